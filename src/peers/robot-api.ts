// The robot API: a listener of its own (ROBOT_PORT) where robots call with the client certificate
// Groundskeeper's CA issued them (profile 'robot', CN = the robot's id). The handshake refuses
// any other CA; then every request looks the certificate up in the database
// (gk_private.robot_presented: its serial and its bytes): it must be the stored one, issued,
// unexpired, owned by the robot its CN names, and of that robot's current team — so a revoked, unknown or moved robot's
// certificate is refused on its next request, not at the next CRL. Areas bring the routes
// (manifest `robotRoutes`); a handler gets only the authenticated identity, never a robot id
// from the request, so one robot cannot name another.
import type http from "node:http";
import type { TLSSocket } from "node:tls";
import type pg from "pg";
import type { Logger } from "pino";
import { sendJson } from "../server/http.ts";
import type { Services } from "../services.ts";
import type { ControllerIdentity } from "./controller.ts";
import { readJsonBody, sendPeerJson as send } from "./http.ts";
import { type ListenerLimits, listenMutualTls, type MutualTlsListener } from "./listener.ts";
import { peerOf } from "./tls.ts";

/** Who is calling: established from the certificate and the database, never from the request. */
export interface RobotIdentity {
  robotId: string;
  teamId: string;
  certificateId: string;
  /** The presented certificate's serial (lower-case hex). */
  serial: string;
  /** The presented certificate (DER), as the handshake verified it: what the database's
   * robot-bound entry points check (gk_private.director_robot_online_key). */
  certificate: Buffer;
}

export interface RobotRequest {
  robot: RobotIdentity;
  /** The path's capture groups. */
  params: string[];
  query: URLSearchParams;
  /** Parsed JSON (undefined when empty), at most the route's maxBodyBytes. */
  body: unknown;
  db: pg.Pool;
  services: Services;
  log: Logger;
  /** Aborted when the client goes away or the request's deadline passes. */
  signal: AbortSignal;
}

export interface RobotResponse {
  status: number;
  /** Sent as JSON... */
  body?: unknown;
  /** ...or these exact bytes (signed documents whose hashes a client checks). */
  raw?: { contentType: string; data: string | Buffer };
  headers?: Record<string, string>;
}

export interface RobotRoute {
  method: "GET" | "POST" | "PUT";
  /** Matched against the path only, e.g. /^\/robot\/v1\/certificate$/. */
  path: RegExp;
  /** Default 64 KiB; larger bodies get 413. */
  maxBodyBytes?: number;
  handle(req: RobotRequest): Promise<RobotResponse>;
}

export interface RobotApiOptions {
  db: pg.Pool;
  identity: ControllerIdentity;
  routes: RobotRoute[];
  services: Services;
  host: string;
  port: number;
  log: Logger;
  limits?: ListenerLimits & {
    /** Requests handled at once; more get 503 with Retry-After. Default 256. */
    maxInFlight?: number;
    /** Deadline of a handler (its signal aborts). Default 30 s. */
    handlerTimeoutMs?: number;
  };
  reloadMs?: number;
}

export type RobotApi = MutualTlsListener;

export async function authenticateRobot(db: pg.Pool, socket: TLSSocket): Promise<RobotIdentity | null> {
  const id = peerOf(socket);
  if (id?.profile !== "robot") return null;
  const certificate = socket.getPeerCertificate().raw;
  const { rows } = await db.query<{ certificate_id: string; robot_id: string; team_id: string }>(
    "select certificate_id, robot_id, team_id from gk_private.robot_presented($1, $2)",
    [id.serial, certificate],
  );
  const row = rows[0];
  if (!row || row.robot_id !== id.commonName) return null;
  return { robotId: row.robot_id, teamId: row.team_id, certificateId: row.certificate_id, serial: id.serial, certificate };
}

function reply(res: http.ServerResponse, out: RobotResponse): void {
  // What a robot reads is its own and changes (a regenerated certificate): never cached.
  const headers = { "Cache-Control": "no-store", ...out.headers };
  if (out.raw) {
    const data = Buffer.from(out.raw.data);
    res.writeHead(out.status, { "Content-Type": out.raw.contentType, "Content-Length": String(data.length), ...headers });
    res.end(data);
  } else if (out.body === undefined) {
    res.writeHead(out.status, { "Content-Length": "0", ...headers }).end();
  } else {
    sendJson(res, out.status, out.body, headers);
  }
}

export async function startRobotApi(opts: RobotApiOptions): Promise<RobotApi> {
  const maxInFlight = opts.limits?.maxInFlight ?? 256;
  const handlerTimeoutMs = opts.limits?.handlerTimeoutMs ?? 30_000;
  let inFlight = 0;
  return listenMutualTls({
    name: "robot API",
    identity: opts.identity,
    db: opts.db,
    host: opts.host,
    port: opts.port,
    log: opts.log,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.reloadMs === undefined ? {} : { reloadMs: opts.reloadMs }),
    handler: (req, res) => {
      if (inFlight >= maxInFlight) {
        req.resume();
        return sendJson(res, 503, { error: "busy" }, { "Retry-After": "1" });
      }
      inFlight++;
      res.once("close", () => inFlight--);
      const deadline = AbortSignal.any([AbortSignal.timeout(handlerTimeoutMs), abortedWhenClosed(res)]);
      void (async () => {
        const robot = await authenticateRobot(opts.db, req.socket as TLSSocket);
        if (!robot) {
          req.resume();
          return send(res, 403, { error: "forbidden" });
        }
        const url = new URL(req.url ?? "/", "https://robot-api");
        const route = opts.routes.find((r) => r.method === req.method && r.path.test(url.pathname));
        if (!route) {
          req.resume();
          return send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
        }
        const body = await readJsonBody(req, route.maxBodyBytes ?? 64 * 1024);
        const out = await route.handle({
          robot,
          params: route.path.exec(url.pathname)!.slice(1),
          query: url.searchParams,
          body,
          db: opts.db,
          services: opts.services,
          log: opts.log,
          signal: deadline,
        });
        reply(res, out);
      })().catch((e) => {
        const status = (e as { status?: number }).status ?? 500;
        if (status === 500) opts.log.error({ err: e }, "robot API: request failed");
        if (!res.headersSent) send(res, status, { error: status === 500 ? "internal error" : (e as Error).message });
      });
    },
  });
}

function abortedWhenClosed(res: http.ServerResponse): AbortSignal {
  const c = new AbortController();
  res.once("close", () => c.abort(new Error("client went away")));
  return c.signal;
}
