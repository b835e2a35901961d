// A JSON-over-HTTPS client for one peer, authenticated both ways: our certificate as client,
// theirs checked against our CA and the expected profile/owner (expectPeer). Sockets are kept
// alive and capped (maxSockets), so a burst of calls never opens more than that many connections
// to one peer. Every call has two deadlines: one for a free connection (a call waits in the
// agent's queue while maxSockets others run), then one covering connect, send and the whole
// answer, from the moment it has its connection: a call queued behind others to the same peer
// still gets its whole deadline for its own work.
import https from "node:https";
import { expectPeer, type PeerCredentials } from "./tls.ts";

export class PeerTimeoutError extends Error {
  override name = "PeerTimeoutError";
}

export class PeerHttpError extends Error {
  override name = "PeerHttpError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface PeerClientOptions {
  profile: string;
  commonName?: string;
  maxSockets?: number;
  timeoutMs?: number;
  /** Longest wait for a free connection (default: the call's own deadline). */
  queueTimeoutMs?: number;
  /** Largest answer accepted (default 64 MiB: a report of 1,000,000 handles fits). */
  maxResponseBytes?: number;
}

export class PeerClient {
  readonly #agent: https.Agent;
  readonly #base: URL;
  readonly #timeoutMs: number;
  readonly #queueTimeoutMs: number | undefined;
  readonly #maxResponse: number;

  constructor(baseUrl: string, credentials: PeerCredentials, opts: PeerClientOptions) {
    this.#base = new URL(baseUrl);
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#queueTimeoutMs = opts.queueTimeoutMs;
    this.#maxResponse = opts.maxResponseBytes ?? 64 * 1024 * 1024;
    this.#agent = new https.Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 4,
      key: credentials.keyPem,
      cert: credentials.certPem,
      ca: credentials.caPem,
      checkServerIdentity: expectPeer(opts.profile, opts.commonName),
    });
  }

  /** Sends a JSON request; resolves with the parsed answer of a 2xx, rejects otherwise. */
  request<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        new URL(path, this.#base),
        {
          method,
          agent: this.#agent,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > this.#maxResponse) req.destroy(new Error(`answer over ${this.#maxResponse} bytes`));
            else chunks.push(c);
          });
          res.on("end", () => {
            clearTimer();
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed as T);
            else {
              const msg = (parsed as { error?: string } | undefined)?.error ?? text.slice(0, 200);
              reject(new PeerHttpError(status, `${method} ${path}: ${status} ${msg}`));
            }
          });
          res.on("error", (e) => {
            clearTimer();
            reject(e);
          });
        },
      );
      const clearTimer = this.#deadlines(req, `${method} ${path}`, timeoutMs);
      req.on("error", (e) => {
        clearTimer();
        reject(e);
      });
      req.end(payload);
    });
  }

  /** GETs raw bytes (a file a role serves); at most maxBytes, else it rejects. */
  download(path: string, maxBytes = this.#maxResponse, timeoutMs = this.#timeoutMs): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const req = https.request(new URL(path, this.#base), { method: "GET", agent: this.#agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) req.destroy(new Error(`GET ${path}: answer over ${maxBytes} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          clearTimer();
          const status = res.statusCode ?? 0;
          const body = Buffer.concat(chunks);
          if (status >= 200 && status < 300) resolve(body);
          else reject(new PeerHttpError(status, `GET ${path}: ${status} ${body.toString("utf8").slice(0, 200)}`));
        });
        res.on("error", (e) => {
          clearTimer();
          reject(e);
        });
      });
      const clearTimer = this.#deadlines(req, `GET ${path}`, timeoutMs);
      req.on("error", (e) => {
        clearTimer();
        reject(e);
      });
      req.end();
    });
  }

  /**
   * Arms a call's deadlines (see the top of this file): a free connection within the queue
   * deadline, then the answer within `timeoutMs` of getting it. Returns what clears the one armed.
   */
  #deadlines(req: import("node:http").ClientRequest, label: string, timeoutMs: number): () => void {
    const queueMs = this.#queueTimeoutMs ?? timeoutMs;
    let timer = setTimeout(
      () => req.destroy(new PeerTimeoutError(`${label}: no free connection to the peer within ${queueMs} ms`)),
      queueMs,
    );
    req.once("socket", () => {
      clearTimeout(timer);
      timer = setTimeout(() => req.destroy(new PeerTimeoutError(`${label}: no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return () => clearTimeout(timer);
  }

  close(): void {
    this.#agent.destroy();
  }
}
