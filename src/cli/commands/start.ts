// groundskeeper start: everything in one process for a laptop or a demo — embedded PostgreSQL
// (unless DATABASE_URL), migrations, the job runner with its crontab, and the admin API.
import type { Command } from "commander";
import { parsePort } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("start")
    .description("run everything in one process: database (embedded unless DATABASE_URL), migrations, worker, admin API")
    .option("-p, --port <port>", "port of the admin API (default: PORT or 5678)", parsePort)
    .option("-H, --host <host>", "address to listen on (default: HOST or 127.0.0.1)")
    .option("--robot-port <port>", "port of the robot API, mutual TLS (default: ROBOT_PORT; unset: off)", parsePort)
    .action(async (opts: { port?: number; host?: string; robotPort?: number }, cmd: Command) =>
      (await import("../boot.ts")).runApp(cmd, { migrate: true, exclusive: true }, async (app) => {
        const { ensureAdminToken } = await import("../admin-token.ts");
        const { describeDatabase } = await import("../context.ts");
        const { startPeerGatewayPart, startRobotApiPart, startServerPart, startWorkerPart } = await import("../parts.ts");
        const { config } = app;
        await startWorkerPart(app, { concurrency: config.WORKER_CONCURRENCY, cron: true });
        const server = await startServerPart(app, { host: opts.host ?? config.HOST, port: opts.port ?? config.PORT });
        await startPeerGatewayPart(app, { host: opts.host ?? config.HOST });
        await startRobotApiPart(app, { host: opts.host ?? config.HOST, port: opts.robotPort });
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
