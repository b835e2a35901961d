// The admin HTTP server: /healthz, /metrics, pluggable routes, and the GraphQL API (bearer
// token checked here, before grafserv) with Ruru GraphiQL at /.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type pg from "pg";
import type { PostGraphileInstance } from "postgraphile";
import { NodeGrafservBase } from "postgraphile/grafserv/node";
import { UserError } from "../lib/errors.ts";
import { createPool } from "../db/pool.ts";
import type { Services } from "../services.ts";
import { createPostgraphile, GRAPHQL_PATH, setRequestRole } from "./graphql.ts";
import { collectors as platformCollectors, createMetrics, MetricsPartialError, type MetricCollector } from "./metrics.ts";
import { sendJson, sendText } from "./http.ts";
import type { QueryLimits } from "./query-limits.ts";
import type { Route } from "./routes.ts";
import { bearerToken, roleForToken } from "./tokens.ts";

export interface AdminServerOptions {
  databaseUrl: string;
  host: string;
  port: number;
  services: Services;
  /** PostgreSQL interval for each API statement; default 15s. */
  statementTimeout?: string;
  /** The areas' routes (src/areas.ts `areaRoutes`). */
  routes?: Route[];
  /** Page sizes, depth, aliases and cost budget of GraphQL operations (src/server/query-limits.ts). */
  limits?: Partial<QueryLimits>;
  /** Every metric collector; default: the platform's own (job queue, activations). */
  collectors?: MetricCollector[];
}

export interface AdminServer {
  /** Base URL, e.g. http://127.0.0.1:5678 */
  url: string;
  port: number;
  pgl: PostGraphileInstance;
  pool: pg.Pool;
  /** Stops accepting connections, finishes in-flight requests, releases the database pool. */
  close(): Promise<void>;
}

// grafserv's Node adaptor, exposing its request handler so that our router can call it after
// authentication (its `addTo` would attach a second, unconditional request listener instead).
class GroundskeeperGrafserv extends NodeGrafservBase {
  handler(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
    return this._createHandler(false);
  }
}

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const log: Logger = opts.services.log.child({ component: "server" });
  const pool = createPool(opts.databaseUrl, 10);
  const pgl = createPostgraphile({
    pool,
    statementTimeout: opts.statementTimeout ?? "15s",
    log,
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  let server: http.Server | undefined;
  try {
    await pgl.getSchema(); // fail now (bad database, not migrated) rather than on the first request
    const serv = pgl.createServ((config) => new GroundskeeperGrafserv(config));
    const graphql = serv.handler();
    const metrics = createMetrics(pool, opts.collectors ?? platformCollectors);
    const extraRoutes = opts.routes ?? [];

    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const path = url.pathname;
      if (path === "/healthz") return healthz(pool, res);
      if (path === "/metrics") {
        try {
          return sendText(res, 200, await metrics.render(), metrics.contentType);
        } catch (e) {
          log.error({ err: e }, "metrics collection failed");
          if (e instanceof MetricsPartialError) return sendText(res, 500, e.text, metrics.contentType);
          return sendText(res, 500, `metrics collection failed: ${(e as Error).message}\n`);
        }
      }
      const route = extraRoutes.find((r) => path.startsWith(r.prefix));
      const needsAuth = route ? route.auth === true : path === GRAPHQL_PATH || path.startsWith(`${GRAPHQL_PATH}/`);
      let role: string | undefined;
      if (needsAuth) {
        const token = bearerToken(req.headers.authorization);
        role = (token ? await roleForToken(pool, token) : null) ?? undefined;
        if (!role) {
          return sendJson(
            res,
            401,
            { errors: [{ message: token ? "invalid or revoked token" : "missing bearer token: send 'Authorization: Bearer <token>'" }] },
            {
              "WWW-Authenticate": 'Bearer realm="groundskeeper"',
            },
          );
        }
        setRequestRole(req, role);
      }
      if (route) return route.handle(req, res, { db: pool, services: opts.services, log, path, url, ...(role ? { role } : {}) });
      graphql(req, res, () => sendText(res, 404, `not found: ${path}\n`));
    };

    server = http.createServer((req, res) => {
      handle(req, res).catch((e) => {
        log.error({ err: e, path: req.url }, "request failed");
        if (!res.headersSent) sendJson(res, 500, { errors: [{ message: "internal error" }] });
        else res.destroy();
      });
    });
    await listen(server, opts.port, opts.host);
    const port = (server.address() as AddressInfo).port;
    const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    const srv = server;
    let closing: Promise<void> | undefined;
    return {
      url: `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`,
      port,
      pgl,
      pool,
      close: () =>
        (closing ??= (async () => {
          const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
          srv.closeIdleConnections();
          // In-flight requests get a moment to finish; then their connections are cut.
          const timer = setTimeout(() => srv.closeAllConnections(), 5_000);
          await closed;
          clearTimeout(timer);
          await pgl.release();
          await pool.end();
        })()),
    };
  } catch (e) {
    server?.close();
    await Promise.resolve(pgl.release()).catch(() => {});
    await pool.end().catch(() => {});
    throw e;
  }
}

async function healthz(pool: pg.Pool, res: ServerResponse): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("database did not answer within 3s")), 3_000);
    });
    await Promise.race([pool.query("select 1"), timeout]);
    sendJson(res, 200, { status: "ok" });
  } catch (e) {
    sendJson(res, 503, { status: "unavailable", error: (e as Error).message });
  } finally {
    clearTimeout(timer);
  }
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      if (e.code === "EADDRINUSE") reject(new UserError(`port ${port} on ${host} is already in use (set PORT or --port)`));
      else if (e.code === "EACCES") reject(new UserError(`not allowed to listen on ${host}:${port}`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND")
        reject(new UserError(`cannot listen on ${host}: address not available`));
      else reject(e);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}
