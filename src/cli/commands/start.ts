// groundskeeper start: everything in one process for a laptop or a demo — embedded PostgreSQL
// (unless DATABASE_URL), migrations, the job runner with its crontab, and the admin API.
import type { Command } from "commander";
import { ensureAdminToken } from "../admin-token.ts";
import { runApp } from "../boot.ts";
import { describeDatabase } from "../context.ts";
import { parsePort } from "../options.ts";
import { startPeerGatewayPart, startRobotApiPart, startServerPart, startWorkerPart } from "../parts.ts";

export default function register(program: Command): void {
  program
    .command("start")
    .description("run everything in one process: database (embedded unless DATABASE_URL), migrations, worker, admin API")
    .option("-p, --port <port>", "port of the admin API (default: PORT or 5678)", parsePort)
    .option("-H, --host <host>", "address to listen on (default: HOST or 127.0.0.1)")
    .option("--robot-port <port>", "port of the robot API, mutual TLS (default: ROBOT_PORT; unset: off)", parsePort)
    .action((opts: { port?: number; host?: string; robotPort?: number }, cmd: Command) =>
      runApp(cmd, { migrate: true, exclusive: true }, async (app) => {
        const { config } = app;
        await startWorkerPart(app, { concurrency: config.WORKER_CONCURRENCY, cron: true });
        const server = await startServerPart(app, { host: opts.host ?? config.HOST, port: opts.port ?? config.PORT });
        startPeerGatewayPart(app, { host: opts.host ?? config.HOST });
        startRobotApiPart(app, { host: opts.host ?? config.HOST, port: opts.robotPort });
        // Creating a token is the owner's business: the server's own pools run as gk_api.
        const admin = await ensureAdminToken(app.pool("admin token", 1), config.home);
        console.log(
          [
            "Groundskeeper is running.",
            `  GraphiQL:    ${server.url}/`,
            `  GraphQL:     ${server.url}/graphql`,
            // The token is shown once, when it is made; afterwards only where it is kept.
            admin.created
              ? `  Admin token: ${admin.token}\n               (created now; kept in ${admin.file}, mode 0600)`
              : `  Admin token: kept in ${admin.file} (shown when it was created; cat that file)`,
            `  Database:    ${describeDatabase(app.db)}`,
            `In GraphiQL, open "Headers" and set {"Authorization": "Bearer <admin token>"}. Press Ctrl-C to stop.`,
          ].join("\n"),
        );
      }),
    );
}
