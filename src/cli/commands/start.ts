// groundskeeper start: everything in one process for a laptop or a demo — embedded PostgreSQL
// (unless DATABASE_URL), migrations, the job runner with its crontab, and the admin API.
import type { Command } from "commander";
import { areaPeerRoutes, areaServerParts } from "../../areas.ts";
import { createPool } from "../../db/pool.ts";
import { startGatewayInBackground } from "../../peers/serve-gateway.ts";
import { ensureAdminToken } from "../admin-token.ts";
import { cliContext, describeDatabase, openDatabase } from "../context.ts";
import { Lifecycle, stopRunner, workerPool } from "../lifecycle.ts";
import { parsePort } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("start")
    .description("run everything in one process: database (embedded unless DATABASE_URL), migrations, worker, admin API")
    .option("-p, --port <port>", "port of the admin API (default: PORT or 5678)", parsePort)
    .option("-H, --host <host>", "address to listen on (default: HOST or 127.0.0.1)")
    .action(async (opts: { port?: number; host?: string }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const { config, log } = ctx;
      const { startAdminServer } = await import("../../server/server.ts");
      const { startWorker } = await import("../../worker/runner.ts");
      const { servicesFromEnv } = await import("../../services-from-config.ts");
      const life = new Lifecycle(log);
      try {
        const db = await openDatabase(ctx, { migrate: true });
        life.add("database", () => db.close());
        // The local CA keeps its state in the database, on a pool of its own: tasks hold a worker
        // connection (a row lock) while they call the CA.
        const caPool = createPool(db.url, 4);
        life.add("ca pool", () => caPool.end());
        const services = await servicesFromEnv(log, config.home, process.env, { pool: caPool });
        const pgPool = workerPool(db.url, config.WORKER_CONCURRENCY);
        const runner = await startWorker({ databaseUrl: db.url, pgPool, services, concurrency: config.WORKER_CONCURRENCY }).catch(
          async (e) => {
            await pgPool.end();
            throw e;
          },
        );
        life.add("worker", () => stopRunner(runner, pgPool));
        runner.promise.catch((e) => life.fail("worker", e));
        const server = await startAdminServer({
          databaseUrl: db.url,
          host: opts.host ?? config.HOST,
          port: opts.port ?? config.PORT,
          services,
          statementTimeout: config.API_STATEMENT_TIMEOUT,
          ...areaServerParts(),
        });
        life.add("server", () => server.close());
        startGatewayInBackground({
          port: config.PEER_PORT,
          host: config.PEER_HOST ?? opts.host ?? config.HOST,
          pool: caPool,
          services,
          routes: areaPeerRoutes,
          log: log,
          onStarted: (g) => life.add("peer gateway", () => g.close()),
        });
        const admin = await ensureAdminToken(server.pool, config.home);
        console.log(
          [
            "Groundskeeper is running.",
            `  GraphiQL:    ${server.url}/`,
            `  GraphQL:     ${server.url}/graphql`,
            `  Admin token: ${admin.token}`,
            `               (${admin.created ? "created now; " : ""}kept in ${admin.file})`,
            `  Database:    ${describeDatabase(db)}`,
            `In GraphiQL, open "Headers" and set {"Authorization": "Bearer <admin token>"}. Press Ctrl-C to stop.`,
          ].join("\n"),
        );
      } catch (e) {
        await life.stop(1);
        throw e;
      }
      process.exitCode = await life.done();
    });
}
