// The parts a long-running command is made of, each started on a booted App (src/cli/boot.ts)
// and registered with its lifecycle so that shutdown stops it in reverse order.
import { areaPeerRoutes, areaRobotRoutes, areaServerParts } from "../areas.ts";
import { createPool } from "../db/pool.ts";
import { checkPeerSession, peerConnectionString } from "../peers/peer-role.ts";
import type pg from "pg";
import type { Services } from "../services.ts";
import { startGatewayInBackground, startRobotApiInBackground } from "../peers/serve-gateway.ts";
import type { AdminServer } from "../server/server.ts";
import { UserError } from "../lib/errors.ts";
import type { App } from "./boot.ts";
import { workerPool } from "./lifecycle.ts";

/**
 * The job runner (tasks/ and the crontab), restarted after a database outage
 * (src/worker/supervisor.ts); any other failure takes the process down cleanly.
 */
export async function startWorkerPart(app: App, opts: { concurrency: number; cron: boolean }): Promise<void> {
  const { superviseWorker } = await import("../worker/supervisor.ts");
  const pgPool = workerPool(app.db.url, opts.concurrency);
  const worker = await superviseWorker({
    databaseUrl: app.db.url,
    pgPool,
    log: app.log,
    services: app.services,
    concurrency: opts.concurrency,
    cron: opts.cron,
    heartbeatTtlSeconds: app.config.WORKER_HEARTBEAT_TTL,
  }).catch(async (e) => {
    await pgPool.end();
    throw e;
  });
  // stop(): no new jobs; running jobs finish and are recorded; then the pool is ended.
  app.life.add("worker", async () => {
    await worker.stop();
    await pgPool.end();
  });
  worker.promise.catch((e) => app.life.fail("worker", e));
  app.log.info({ concurrency: opts.concurrency, cron: opts.cron }, "worker running");
}

/** The admin API: GraphQL with GraphiQL, /healthz, /metrics and the areas' routes. */
export async function startServerPart(app: App, opts: { host: string; port: number }): Promise<AdminServer> {
  const { startAdminServer } = await import("../server/server.ts");
  const { apiConnectionString } = await import("../server/api-role.ts");
  const { caFromEnv } = await import("../adapters/ca/from-config.ts");
  // The routes reach the CA (CRL, CA certificate) too: the server's CA gets a pool that runs as
  // gk_api like the server's own (sql/920_api_role.sql grants it the CRL's part of the local CA).
  const caPool = createPool(apiConnectionString(app.db.apiUrl ?? app.db.url), 2);
  app.life.add("API CA pool", () => caPool.end());
  const ca = await caFromEnv(process.env, app.config.home, {
    pool: caPool,
    ...(app.services.secrets ? { secrets: app.services.secrets } : {}),
  });
  const server = await startAdminServer({
    databaseUrl: app.db.url,
    ...(app.db.apiUrl ? { apiDatabaseUrl: app.db.apiUrl } : {}),
    host: opts.host,
    port: opts.port,
    services: { ...app.services, ...(ca ? { ca } : {}) },
    statementTimeout: app.config.API_STATEMENT_TIMEOUT,
    ...areaServerParts(),
  });
  app.life.add("server", () => server.close());
  return server;
}

/**
 * The login of the mutual-TLS listeners: their own (PEER_DATABASE_URL, the embedded
 * gk_peer_login), else DATABASE_URL's role. Never the admin server's (API_DATABASE_URL), which
 * reaches gk_admin: with one of those but no PEER_DATABASE_URL the listeners do not start.
 */
export function listenerLogin(db: App["db"], name: string): { url: string; own: boolean } {
  if (db.peerUrl) return { url: db.peerUrl, own: true };
  if (db.apiUrl && db.kind === "external") {
    throw new UserError(
      `the ${name} needs PEER_DATABASE_URL, a login of the listeners' own (a member of gk_peer only), since API_DATABASE_URL is set: it no longer shares the admin API's login (see README, "Database roles")`,
    );
  }
  return { url: db.url, own: false };
}

/**
 * What a mutual-TLS listener queries through: a pool whose connections start as gk_peer
 * (sql/930_peer_role.sql) on the listeners' login (listenerLogin), and the built-in CA on that
 * pool (the CRL the gateway serves, the CA certificate robots are handed), whose CRL part gk_peer
 * is granted as gk_api is.
 */
async function peerParts(app: App, name: string, max: number): Promise<{ pool: pg.Pool; services: Services }> {
  const { caFromEnv } = await import("../adapters/ca/from-config.ts");
  const login = listenerLogin(app.db, name);
  const pool = createPool(peerConnectionString(login.url), max);
  app.life.add(`${name} pool`, () => pool.end());
  // At startup, not in the background: a login that is not gk_peer's member, or one that reaches
  // further, stops the command with one line.
  await checkPeerSession(pool, name, login.own);
  const ca = await caFromEnv(process.env, app.config.home, {
    pool,
    ...(app.services.secrets ? { secrets: app.services.secrets } : {}),
  });
  return { pool, services: { ...app.services, ...(ca ? { ca } : {}) } };
}

/**
 * The peer gateway (mutual TLS) where agents register and heartbeat, when PEER_PORT is set. It
 * starts once the controller certificate is issued (a worker issues it), without holding up the
 * admin API.
 */
export async function startPeerGatewayPart(app: App, opts: { host: string }): Promise<void> {
  if (app.config.PEER_PORT === undefined) return;
  startGatewayInBackground({
    port: app.config.PEER_PORT,
    host: app.config.PEER_HOST ?? opts.host,
    ...(await peerParts(app, "peer gateway", 4)),
    routes: areaPeerRoutes,
    log: app.log,
    onStarted: (g) => app.life.add("peer gateway", () => g.close()),
  });
}

/**
 * The robot API (mutual TLS with robot certificates) when ROBOT_PORT (or --robot-port) is set;
 * like the peer gateway, it starts once the controller certificate it presents is issued.
 */
export async function startRobotApiPart(app: App, opts: { host: string; port: number | undefined }): Promise<void> {
  const port = opts.port ?? app.config.ROBOT_PORT;
  if (port === undefined) return;
  startRobotApiInBackground({
    port,
    host: app.config.ROBOT_HOST ?? opts.host,
    ...(await peerParts(app, "robot API", 8)),
    routes: areaRobotRoutes,
    log: app.log,
    onStarted: (l) => app.life.add("robot API", () => l.close()),
  });
}
