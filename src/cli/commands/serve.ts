// groundskeeper serve: the GraphQL admin API (+ GraphiQL, /healthz, /metrics) only.
import type { Command } from "commander";
import { parsePort } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("serve")
    .description("run the GraphQL admin API with GraphiQL, /healthz and /metrics (no jobs)")
    .option("-p, --port <port>", "port to listen on (default: PORT or 5678)", parsePort)
    .option("-H, --host <host>", "address to listen on (default: HOST or 127.0.0.1)")
    .option("--robot-port <port>", "port of the robot API, mutual TLS (default: ROBOT_PORT; unset: off)", parsePort)
    .action(async (opts: { port?: number; host?: string; robotPort?: number }, cmd: Command) =>
      (await import("../boot.ts")).runApp(cmd, {}, async (app) => {
        const { describeDatabase } = await import("../context.ts");
        const { startPeerGatewayPart, startRobotApiPart, startServerPart } = await import("../parts.ts");
        // The local CA (its state is in the database) serves /ca/crl.pem and /ca/ca.pem.
        const server = await startServerPart(app, { host: opts.host ?? app.config.HOST, port: opts.port ?? app.config.PORT });
        await startPeerGatewayPart(app, { host: opts.host ?? app.config.HOST });
        await startRobotApiPart(app, { host: opts.host ?? app.config.HOST, port: opts.robotPort });
        console.log(`GraphiQL:  ${server.url}/\nGraphQL:   ${server.url}/graphql\nDatabase:  ${describeDatabase(app.db)}`);
        console.log("Create a token with 'groundskeeper token create --role admin --name <who>'. Press Ctrl-C to stop.");
      }),
    );
}
