// The mutual-TLS listeners inside `serve` and `start`: the peer gateway when PEER_PORT is set,
// the robot API when ROBOT_PORT is set. Each waits (in the background) for the controller
// certificate it presents, which a worker issues on first use, so the admin API does not wait.
import type pg from "pg";
import type { Logger } from "pino";
import type { Services } from "../services.ts";
import { type PeerRoute, startPeerGateway } from "./gateway.ts";
import type { MutualTlsListener } from "./listener.ts";
import { type RobotRoute, startRobotApi } from "./robot-api.ts";

interface BackgroundOptions {
  port: number | undefined;
  host: string;
  pool: pg.Pool;
  services: Services;
  log: Logger;
  onStarted: (l: MutualTlsListener) => void;
}

function inBackground(
  name: string,
  label: string,
  opts: BackgroundOptions,
  start: (controller: NonNullable<Services["controller"]>, ca: NonNullable<Services["ca"]>, port: number) => Promise<MutualTlsListener>,
): void {
  if (opts.port === undefined) return;
  const { controller, ca } = opts.services;
  if (!controller || !ca) {
    opts.log.warn(`${name}: needs the CA and the master key; not started`);
    return;
  }
  void start(controller, ca, opts.port).then(
    (l) => {
      opts.log.info({ url: l.url }, `${name} listening`);
      console.log(`${label} ${l.url}`);
      opts.onStarted(l);
    },
    (e) => opts.log.error({ err: e }, `${name}: not started`),
  );
}

export function startGatewayInBackground(opts: BackgroundOptions & { routes: PeerRoute[] }): void {
  inBackground("peer gateway", "Peer gateway:", opts, (identity, ca, port) =>
    startPeerGateway({ db: opts.pool, identity, routes: opts.routes, crlPem: () => ca.crlPem(), host: opts.host, port, log: opts.log }),
  );
}

export function startRobotApiInBackground(opts: BackgroundOptions & { routes: RobotRoute[] }): void {
  inBackground("robot API", "Robot API:", opts, (identity, _ca, port) =>
    startRobotApi({ db: opts.pool, identity, routes: opts.routes, services: opts.services, host: opts.host, port, log: opts.log }),
  );
}
