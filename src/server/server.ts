// The admin HTTP server: /livez, /readyz (/healthz), /metrics, pluggable routes, and the GraphQL
// API (bearer token checked here, before grafserv; concurrent requests bounded per token) with
// Ruru GraphiQL at /. Every request path is decoded and checked once, before routing
// (src/server/request-input.ts).
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type pg from "pg";
import type { PostGraphileInstance } from "postgraphile";
import { NodeGrafservBase } from "postgraphile/grafserv/node";
import { UserError } from "../lib/errors.ts";
import { createPool } from "../db/pool.ts";
import { apiConnectionString, checkApiSession } from "./api-role.ts";
import type { Services } from "../services.ts";
import { boundArguments, recordAudit } from "./audit.ts";
import { buildInfo } from "./build-info.ts";
import { createPostgraphile, GRAPHQL_PATH } from "./graphql.ts";
import { sendError, sendJson, sendText } from "./http.ts";
import { type ConcurrencyLimits, DEFAULT_CONCURRENCY_LIMITS, RequestLimiter } from "./limiter.ts";
import { collectors as platformCollectors, createMetrics, MetricsPartialError, type MetricCollector } from "./metrics.ts";
import type { QueryLimits } from "./query-limits.ts";
import { setRequestIdentity } from "./request-identity.ts";
import { type DecodedPath, decodePath, HttpError, statusForError } from "./request-input.ts";
import { capResponse } from "./response-cap.ts";
import type { Route } from "./routes.ts";
import { bearerToken, lookupToken } from "./tokens.ts";

export interface AdminServerOptions {
  databaseUrl: string;
  /**
   * A login role of the API's own (API_DATABASE_URL, the embedded gk_api_login); without it the
   * server logs in with databaseUrl. Either way every connection runs as gk_api (./api-role.ts).
   */
  apiDatabaseUrl?: string;
  host: string;
  port: number;
  services: Services;
  /** PostgreSQL interval for each API statement; default 15s. */
  statementTimeout?: string;
  /** The areas' routes (src/areas.ts `areaRoutes`). */
  routes?: Route[];
  /** Page sizes, depth, aliases and cost budget of GraphQL operations (src/server/query-limits.ts). */
  limits?: Partial<QueryLimits>;
  /** Expensive requests in flight per token and in total (src/server/limiter.ts). */
  concurrency?: Partial<ConcurrencyLimits>;
  /** Largest GraphQL response body in bytes (default 16 MiB); larger results are replaced by an error. */
  maxResponseBytes?: number;
  /** Connections of the pool that serves GraphQL and the routes (default 10). */
  poolSize?: number;
  /** Every metric collector; default: the platform's own (job queue, activations). */
  collectors?: MetricCollector[];
}

export interface AdminServer {
  /** Base URL, e.g. http://127.0.0.1:5678 */
  url: string;
  port: number;
  pgl: PostGraphileInstance;
  /** The pool of GraphQL and the routes. */
  pool: pg.Pool;
  /** Every pool of the server (GraphQL and routes, token lookup and readiness, metrics). */
  pools: pg.Pool[];
  /** Stops accepting connections, finishes in-flight requests, releases the database pools. */
  close(): Promise<void>;
}

// grafserv's Node adaptor, exposing its request handler so that our router can call it after
// authentication (its `addTo` would attach a second, unconditional request listener instead).
class GroundskeeperGrafserv extends NodeGrafservBase {
  handler(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
    return this._createHandler(false);
  }
}

export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** How long /readyz (and /healthz) wait for the database. */
const READY_TIMEOUT_MS = 2_000;

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const log: Logger = opts.services.log.child({ component: "server" });
  // GraphQL and the routes share one pool; token lookup and readiness have their own small pool
  // and metrics another, so slow operations cannot starve authentication, health or scrapes.
  // None of them runs as the database owner (./api-role.ts).
  const url = apiConnectionString(opts.apiDatabaseUrl ?? opts.databaseUrl);
  const pool = createPool(url, opts.poolSize ?? 10);
  const controlPool = createPool(url, 2);
  const metricsPool = createPool(url, 2);
  const pools = [pool, controlPool, metricsPool];
  const pgl = createPostgraphile({
    pool,
    statementTimeout: opts.statementTimeout ?? "15s",
    log,
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  let server: http.Server | undefined;
  try {
    const session = await checkApiSession(pool, opts.apiDatabaseUrl !== undefined);
    log.debug(session, "API connections run as gk_api");
    await pgl.getSchema(); // fail now (bad database, not migrated) rather than on the first request
    const serv = pgl.createServ((config) => new GroundskeeperGrafserv(config));
    const graphql = serv.handler();
    const metrics = createMetrics(metricsPool, opts.collectors ?? platformCollectors, { buildInfo: buildInfo() });
    const limiter = new RequestLimiter({ ...DEFAULT_CONCURRENCY_LIMITS, ...opts.concurrency });
    const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const extraRoutes = opts.routes ?? [];

    const handle = async (req: IncomingMessage, res: ServerResponse, route: Route | undefined, decoded: DecodedPath) => {
      const { path } = decoded;
      if (path === "/livez") return sendJson(res, 200, { status: "alive" });
      if (path === "/readyz" || path === "/healthz") return readiness(controlPool, res, path === "/readyz" ? "ready" : "ok");
      if (path === "/metrics") {
        try {
          return sendText(res, 200, await metrics.render(), metrics.contentType);
        } catch (e) {
          log.error({ err: e }, "metrics collection failed");
          if (e instanceof MetricsPartialError) return sendText(res, 500, e.text, metrics.contentType);
          return sendText(res, 500, `metrics collection failed: ${(e as Error).message}\n`);
        }
      }
      const isGraphql = !route && (path === GRAPHQL_PATH || path.startsWith(`${GRAPHQL_PATH}/`));
      if (!(route ? route.auth === true : isGraphql)) {
        if (route)
          return route.handle(req, res, { db: pool, services: opts.services, log, path, url: requestUrl(req), segments: decoded.segments });
        return graphql(req, res, () => sendText(res, 404, `not found: ${path}\n`));
      }
      const token = bearerToken(req.headers.authorization);
      const identity = token ? await lookupToken(controlPool, token) : null;
      if (!identity) {
        return sendError(res, 401, token ? "invalid or revoked token" : "missing bearer token: send 'Authorization: Bearer <token>'", {
          "WWW-Authenticate": 'Bearer realm="groundskeeper"',
        });
      }
      const admission = limiter.admit(identity.id);
      if (!admission.ok) return sendError(res, admission.status, admission.message, { "Retry-After": "1" });
      res.once("close", admission.release);
      if (route) {
        const started = performance.now();
        const audit = (operation: string, args: Record<string, unknown>, error: string | null) =>
          recordAudit(pool, log, {
            token: { id: identity.id, name: identity.name },
            role: identity.role,
            operation,
            fields: [],
            arguments: boundArguments(args),
            outcome: error === null ? "succeeded" : "failed",
            error,
            durationMs: performance.now() - started,
          });
        const ctx = {
          db: pool,
          services: opts.services,
          log,
          path,
          url: requestUrl(req),
          segments: decoded.segments,
          role: identity.role,
          token: identity,
          audit,
        };
        return route.handle(req, res, ctx);
      }
      setRequestIdentity(req, identity);
      capResponse(res, maxResponseBytes);
      graphql(req, res, () => sendText(res, 404, `not found: ${path}\n`));
    };

    server = http.createServer((req, res) => {
      const started = process.hrtime.bigint();
      let label = "other";
      res.once("finish", () => {
        metrics.observeRequest(label, req.method ?? "GET", res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
      });
      let decoded: DecodedPath;
      try {
        decoded = decodePath(req.url);
      } catch (e) {
        const status = statusForError(e);
        log.debug({ path: req.url?.slice(0, 200), status, error: (e as Error).message }, "bad request");
        return sendError(res, status, (e as Error).message);
      }
      const route = extraRoutes.find((r) => decoded.path.startsWith(r.prefix));
      label = routeLabel(decoded.path, route);
      handle(req, res, route, decoded).catch((e) => {
        const status = statusForError(e);
        // Errors the request's input provoked are the client's: no stack in the error log.
        if (status < 500) log.debug({ path: decoded.path.slice(0, 200), status, error: (e as Error).message }, "request refused");
        else log.error({ err: e, path: decoded.path.slice(0, 200) }, "request failed");
        if (!res.headersSent) {
          sendError(res, status, status < 500 ? (e instanceof HttpError ? e.message : "bad request") : "internal error");
        } else res.destroy();
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
      pools,
      close: () =>
        (closing ??= (async () => {
          const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
          srv.closeIdleConnections();
          // In-flight requests get a moment to finish; then their connections are cut.
          const timer = setTimeout(() => srv.closeAllConnections(), 5_000);
          await closed;
          clearTimeout(timer);
          await pgl.release();
          await Promise.all(pools.map((p) => p.end()));
        })()),
    };
  } catch (e) {
    server?.close();
    await Promise.resolve(pgl.release()).catch(() => {});
    await Promise.all(pools.map((p) => p.end().catch(() => {})));
    throw e;
  }
}

function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://localhost");
}

// Bounded label values for the HTTP metrics: fixed paths, route prefixes, never raw paths.
const FIXED_ROUTES = new Set(["/", "/graphql", "/livez", "/readyz", "/healthz", "/metrics"]);

function routeLabel(path: string, route: Route | undefined): string {
  if (route) return route.prefix;
  if (FIXED_ROUTES.has(path)) return path;
  if (path.startsWith("/ruru-static/")) return "/ruru-static/";
  return "other";
}

/** 200 when the database answers `select 1` within READY_TIMEOUT_MS on the control pool, else 503. */
async function readiness(pool: pg.Pool, res: ServerResponse, okStatus: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`database did not answer within ${READY_TIMEOUT_MS / 1000}s`)), READY_TIMEOUT_MS);
    });
    await Promise.race([pool.query("select 1"), timeout]);
    sendJson(res, 200, { status: okStatus });
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
