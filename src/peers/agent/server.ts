// The agent's one HTTPS server: mutual TLS with Groundskeeper's CA (a caller without a valid
// certificate of that CA fails the handshake), only controller certificates that are not on the
// CRL get an answer — and, on the routes that say so, callers holding a capability the controller
// signed for that route's resource (src/peers/capability.ts) — and every request is bounded
// (headers, body, time, concurrency).
import crypto from "node:crypto";
import fs from "node:fs";
import type http from "node:http";
import https from "node:https";
import { pipeline } from "node:stream/promises";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { commonNameOf, verifyCapability } from "../capability.ts";
import type { RevocationList } from "../crl.ts";
import { readJsonBody as readBody, sendPeerJson as send } from "../http.ts";
import { type PeerCredentials, peerOf } from "../tls.ts";
import type { AgentRoute } from "./role.ts";

export interface AgentServerLimits {
  maxBodyBytes: number;
  maxInFlight: number;
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: AgentServerLimits = {
  maxBodyBytes: 64 * 1024,
  maxInFlight: 64,
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
};

/**
 * One byte range of a file of `size` bytes from a Range header ("bytes=a-b", "bytes=a-",
 * "bytes=-n"): null for none (or several: the whole file is sent), "unsatisfiable" for a range
 * outside the file.
 */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

/** Streams a file with its length, or one range of it (206); a file that vanished before it was opened is a 404. */
async function sendFile(req: http.IncomingMessage, res: http.ServerResponse, status: number, file: string): Promise<void> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return send(res, 404, { error: "not found" });
    throw e;
  }
  try {
    const { size } = await handle.stat();
    const range = status === 200 ? byteRange(req.headers.range, size) : null;
    const headers = { "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes" };
    if (range === "unsatisfiable") {
      res.writeHead(416, { ...headers, "Content-Range": `bytes */${size}`, "Content-Length": "0" }).end();
      return;
    }
    if (range) {
      res.writeHead(206, {
        ...headers,
        "Content-Range": `bytes ${range.start}-${range.end}/${size}`,
        "Content-Length": String(range.end - range.start + 1),
      });
      await pipeline(handle.createReadStream({ autoClose: false, start: range.start, end: range.end }), res);
      return;
    }
    res.writeHead(status, { ...headers, "Content-Length": String(size) });
    await pipeline(handle.createReadStream({ autoClose: false }), res);
  } finally {
    await handle.close();
  }
}

export interface AgentServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startAgentServer(opts: {
  credentials: PeerCredentials;
  crl: RevocationList;
  routes: AgentRoute[];
  host: string;
  port: number;
  log: Logger;
  limits?: Partial<AgentServerLimits>;
}): Promise<AgentServer> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  let inFlight = 0;
  const ca = new crypto.X509Certificate(opts.credentials.caPem);
  const audience = commonNameOf(opts.credentials.certPem);
  /** A caller that is not the controller: the route it asks for must take a capability, and its bearer token grant it. */
  const authorizeCapability = (
    req: http.IncomingMessage,
    pathname: string,
    callerSerial: string,
  ): { ok: true; route: AgentRoute } | { ok: false; reason: string } => {
    const found = opts.routes
      .filter((r) => r.capability && r.method === req.method)
      .map((r) => ({ r, m: r.path.exec(pathname) }))
      .find((x) => x.m);
    if (!found) return { ok: false, reason: "forbidden" };
    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length).trim() : undefined;
    if (!token) return { ok: false, reason: "a capability token is required (Authorization: Bearer)" };
    const v = verifyCapability(token, {
      ca,
      crl: opts.crl,
      audience,
      callerSerial,
      resource: found.r.capability!(found.m!.slice(1)),
    });
    return v.ok ? { ok: true, route: found.r } : v;
  };
  const server = https.createServer(
    {
      key: opts.credentials.keyPem,
      cert: opts.credentials.certPem,
      ca: opts.credentials.caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    (req, res) => {
      const caller = peerOf(req.socket as TLSSocket);
      const url = new URL(req.url ?? "/", "https://agent");
      const controller = caller?.profile === "controller" && opts.crl.loaded && !opts.crl.isRevoked(caller.serial);
      // Authenticated by the chain, but only Groundskeeper (a controller certificate) that is not
      // revoked may call; anyone else learns nothing, not even which routes exist — except the
      // holder of a capability Groundskeeper signed, on a route that takes one (capability.ts).
      let granted: ReturnType<typeof authorizeCapability> = { ok: false, reason: "forbidden" };
      if (!controller && caller && opts.crl.loaded && !opts.crl.isRevoked(caller.serial))
        granted = authorizeCapability(req, url.pathname, caller.serial);
      if (!caller || (!controller && !granted.ok)) {
        opts.log.warn({ caller, crl: opts.crl.loaded, why: granted.ok ? undefined : granted.reason }, "agent: refused caller");
        send(res, 403, { error: granted.ok || granted.reason === "forbidden" ? "forbidden" : `capability refused: ${granted.reason}` });
        req.resume();
        return;
      }
      if (inFlight >= limits.maxInFlight) {
        send(res, 503, { error: "busy" });
        req.resume();
        return;
      }
      inFlight++;
      res.once("close", () => inFlight--);
      void (async () => {
        for (const route of opts.routes) {
          if (route.method !== req.method) continue;
          const m = route.path.exec(url.pathname);
          if (!m) continue;
          if (!controller && !(granted.ok && granted.route === route)) break;
          const body = await readBody(req, route.maxBodyBytes ?? limits.maxBodyBytes);
          const out = await route.handle({
            method: req.method,
            path: url.pathname,
            params: m.slice(1),
            query: url.searchParams,
            body,
            caller: { commonName: caller.commonName, serial: caller.serial },
          });
          if (out.file) await sendFile(req, res, out.status, out.file);
          else send(res, out.status, out.body);
          return;
        }
        req.resume();
        send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
      })().catch((e) => {
        const status = (e as { status?: number }).status ?? 500;
        if (status === 500) opts.log.error({ err: e }, "agent: request failed");
        if (!res.headersSent) send(res, status, { error: e instanceof Error ? e.message : String(e) });
        else res.destroy();
      });
    },
  );
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = 5_000;
  server.on("tlsClientError", (err) => opts.log.debug({ err: err.message }, "agent: TLS handshake refused"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return {
    url: `https://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
