// groundskeeper serve: the GraphQL admin API (+ GraphiQL, /healthz, /metrics) only.
import type { Command } from "commander";
import { areaPeerRoutes, areaServerParts } from "../../areas.ts";
import { createPool } from "../../db/pool.ts";
import { startGatewayInBackground } from "../../peers/serve-gateway.ts";
import { cliContext, describeDatabase, openDatabase } from "../context.ts";
import { Lifecycle } from "../lifecycle.ts";
import { parsePort } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("serve")
    .description("run the GraphQL admin API with GraphiQL, /healthz and /metrics (no jobs)")
    .option("-p, --port <port>", "port to listen on (default: PORT or 5678)", parsePort)
    .option("-H, --host <host>", "address to listen on (default: HOST or 127.0.0.1)")
    .action(async (opts: { port?: number; host?: string }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const { startAdminServer } = await import("../../server/server.ts");
      const { servicesFromEnv } = await import("../../services-from-config.ts");
      const life = new Lifecycle(ctx.log);
      const db = await openDatabase(ctx);
      life.add("database", () => db.close());
      try {
        // The local CA (its state is in the database) serves /ca/crl.pem and /ca/ca.pem.
        const caPool = createPool(db.url, 2);
        life.add("ca pool", () => caPool.end());
        const services = await servicesFromEnv(ctx.log, ctx.config.home, process.env, { pool: caPool });
        const server = await startAdminServer({
          databaseUrl: db.url,
          host: opts.host ?? ctx.config.HOST,
          port: opts.port ?? ctx.config.PORT,
          services,
          statementTimeout: ctx.config.API_STATEMENT_TIMEOUT,
          ...areaServerParts(),
        });
        life.add("server", () => server.close());
        startGatewayInBackground({
          port: ctx.config.PEER_PORT,
          host: ctx.config.PEER_HOST ?? opts.host ?? ctx.config.HOST,
          pool: caPool,
          services,
          routes: areaPeerRoutes,
          log: ctx.log,
          onStarted: (g) => life.add("peer gateway", () => g.close()),
        });
        console.log(`GraphiQL:  ${server.url}/\nGraphQL:   ${server.url}/graphql\nDatabase:  ${describeDatabase(db)}`);
        console.log("Create a token with 'groundskeeper token create --role admin --name <who>'. Press Ctrl-C to stop.");
      } catch (e) {
        await life.stop(1);
        throw e;
      }
      process.exitCode = await life.done();
    });
}
