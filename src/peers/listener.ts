// An HTTPS listener with mutual TLS, presenting Groundskeeper's controller certificate
// (src/peers/controller.ts) and accepting only client certificates of our CA: the handshake
// refuses anything else. Shared by the peer gateway (agents, src/peers/gateway.ts) and the robot
// API (src/peers/robot-api.ts); what each does with the authenticated caller is theirs. Neither
// starts unless its database connections run as gk_peer (src/peers/peer-role.ts): what a caller
// reaches through them is only what sql/930_peer_role.sql grants.
import https from "node:https";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import type pg from "pg";
import type { Logger } from "pino";
import type { ControllerIdentity } from "./controller.ts";
import { checkPeerSession } from "./peer-role.ts";

export interface MutualTlsListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ListenerLimits {
  /** Time to receive the request headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time to receive the whole request. Default 30 s. */
  requestTimeoutMs?: number;
  /** Open connections at once. Default 1024. */
  maxConnections?: number;
}

export async function listenMutualTls(opts: {
  /** Named in the logs ("peer gateway", "robot API"). */
  name: string;
  identity: ControllerIdentity;
  /** The pool its routes query: checked to run as gk_peer before it listens. */
  db: Pick<pg.Pool, "query">;
  host: string;
  port: number;
  log: Logger;
  handler: http.RequestListener;
  limits?: ListenerLimits;
  /** How often the server certificate is reloaded (it is renewed before it expires). */
  reloadMs?: number;
}): Promise<MutualTlsListener> {
  const session = await checkPeerSession(opts.db, opts.name);
  opts.log.debug(session, `${opts.name}: connections run as gk_peer`);
  const creds = await opts.identity.wait();
  const server = https.createServer(
    { key: creds.keyPem, cert: creds.certPem, ca: creds.caPem, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" },
    opts.handler,
  );
  server.headersTimeout = opts.limits?.headersTimeoutMs ?? 10_000;
  server.requestTimeout = opts.limits?.requestTimeoutMs ?? 30_000;
  server.maxConnections = opts.limits?.maxConnections ?? 1024;
  server.on("tlsClientError", (err) => opts.log.debug({ err: err.message }, `${opts.name}: TLS handshake refused`));
  let served = creds.certPem;
  const reload = setInterval(() => {
    void opts.identity
      .current()
      .then((c) => {
        if (c && c.certPem !== served) {
          server.setSecureContext({ key: c.keyPem, cert: c.certPem, ca: c.caPem });
          served = c.certPem;
        }
      })
      .catch((e) => opts.log.warn({ err: e }, `${opts.name}: could not reload its certificate`));
  }, opts.reloadMs ?? 60_000);
  reload.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(reload);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
