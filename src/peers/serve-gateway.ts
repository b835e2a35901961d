// The peer gateway inside `serve` and `start`, when PEER_PORT is set. It waits (in the
// background) for the controller certificate, which a worker issues on first use, so the admin
// API does not wait for it.
import type pg from "pg";
import type { Logger } from "pino";
import type { Services } from "../services.ts";
import { type PeerGateway, type PeerRoute, startPeerGateway } from "./gateway.ts";

export function startGatewayInBackground(opts: {
  port: number | undefined;
  host: string;
  pool: pg.Pool;
  services: Services;
  routes: PeerRoute[];
  log: Logger;
  onStarted: (g: PeerGateway) => void;
}): void {
  if (opts.port === undefined) return;
  const { controller, ca } = opts.services;
  if (!controller || !ca) {
    opts.log.warn("peer gateway: needs the CA and the master key; not started");
    return;
  }
  void startPeerGateway({
    db: opts.pool,
    identity: controller,
    routes: opts.routes,
    crlPem: () => ca.crlPem(),
    host: opts.host,
    port: opts.port,
    log: opts.log,
  }).then(
    (g) => {
      opts.log.info({ url: g.url }, "peer gateway listening");
      console.log(`Peer gateway: ${g.url}`);
      opts.onStarted(g);
    },
    (e) => opts.log.error({ err: e }, "peer gateway: not started"),
  );
}
