// Groundskeeper's side of the peer protocol: an HTTPS listener with mutual TLS where agents
// register, heartbeat and fetch the CRL. The caller's certificate must chain to our CA (else the
// handshake fails) and be, in the database, issued, unexpired and owned by what its subject
// names — checked on every request, so a revoked or superseded certificate is refused at once
// (no CRL delay on this side). Areas bring the routes (manifest `peerRoutes`).
import type { TLSSocket } from "node:tls";
import type pg from "pg";
import type { Logger } from "pino";
import type { ControllerIdentity } from "./controller.ts";
import { readJsonBody as readJson, sendPeerJson as send } from "./http.ts";
import { listenMutualTls, type MutualTlsListener } from "./listener.ts";
import { peerOf } from "./tls.ts";

export interface Peer {
  certificateId: string;
  profile: string;
  serial: string;
  /** The owner named by the certificate (workers.id for profile 'worker'). */
  ownerId: string;
}

export interface PeerRequest {
  params: string[];
  body: unknown;
  peer: Peer;
  db: pg.Pool;
  log: Logger;
}

export interface PeerRoute {
  method: "GET" | "POST" | "PUT";
  path: RegExp;
  /** The certificate profile allowed to call it. */
  profile: string;
  maxBodyBytes?: number;
  handle(req: PeerRequest): Promise<{ status: number; body?: unknown }>;
}

export type PeerGateway = MutualTlsListener;

const OWNER_COLUMN: Record<string, "worker_id" | "controller_id"> = { worker: "worker_id", controller: "controller_id" };

async function authenticate(db: pg.Pool, socket: TLSSocket): Promise<Peer | null> {
  const id = peerOf(socket);
  if (!id) return null;
  const { rows } = await db.query("select * from gk_private.certificate_peer($1)", [id.serial]);
  const row = rows[0];
  const column = OWNER_COLUMN[id.profile];
  if (!row?.live || !column || row.profile !== id.profile || row[column] !== id.commonName) return null;
  return { certificateId: row.certificate_id, profile: row.profile, serial: id.serial, ownerId: id.commonName };
}

export async function startPeerGateway(opts: {
  db: pg.Pool;
  identity: ControllerIdentity;
  routes: PeerRoute[];
  crlPem: () => Promise<string>;
  host: string;
  port: number;
  log: Logger;
  maxBodyBytes?: number;
  /** How often the server certificate is reloaded (it is renewed before it expires). */
  reloadMs?: number;
}): Promise<PeerGateway> {
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  const routes: PeerRoute[] = [
    {
      method: "GET",
      path: /^\/peer\/v1\/crl$/,
      profile: "*",
      handle: async () => ({ status: 200, body: { crl_pem: await opts.crlPem() } }),
    },
    ...opts.routes,
  ];
  return listenMutualTls({
    name: "peer gateway",
    identity: opts.identity,
    db: opts.db,
    host: opts.host,
    port: opts.port,
    log: opts.log,
    ...(opts.reloadMs === undefined ? {} : { reloadMs: opts.reloadMs }),
    handler: (req, res) => {
      void (async () => {
        const peer = await authenticate(opts.db, req.socket as TLSSocket);
        if (!peer) {
          req.resume();
          return send(res, 403, { error: "forbidden" });
        }
        const path = new URL(req.url ?? "/", "https://gateway").pathname;
        const route = routes.find((r) => r.method === req.method && r.path.test(path));
        if (!route) {
          req.resume();
          return send(res, 404, { error: `no route ${req.method} ${path}` });
        }
        if (route.profile !== "*" && route.profile !== peer.profile) {
          req.resume();
          return send(res, 403, { error: "forbidden" });
        }
        const body = await readJson(req, route.maxBodyBytes ?? maxBody);
        const out = await route.handle({ params: route.path.exec(path)!.slice(1), body, peer, db: opts.db, log: opts.log });
        send(res, out.status, out.body);
      })().catch((e) => {
        const status = (e as { status?: number }).status ?? 500;
        if (status === 500) opts.log.error({ err: e }, "peer gateway: request failed");
        if (!res.headersSent) send(res, status, { error: status === 500 ? "internal error" : (e as Error).message });
      });
    },
  });
}
