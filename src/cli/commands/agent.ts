// groundskeeper agent: the program on a build worker (or any peer machine). One HTTPS server with
// mutual TLS; the roles (from the areas' manifests) add its routes. It needs no database: it
// registers with Groundskeeper's peer gateway and heartbeats. Credentials come from
// `groundskeeper workers enroll --out DIR`.
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../lib/errors.ts";

function parseListen(value: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new UserError(`--listen wants host:port (got ${value})`);
  return { host: m[1]!.replace(/^\[|\]$/g, "") || "127.0.0.1", port: Number(m[2]) };
}

export default function register(program: Command): void {
  program
    .command("agent")
    .description("run the agent of a build worker: owns a data directory, serves Groundskeeper over mutual TLS")
    .requiredOption("--credentials <dir>", "key.pem, cert.pem, ca.pem from 'groundskeeper workers enroll'")
    .requiredOption("--gateway <url>", "Groundskeeper's peer gateway, https://host:port (PEER_PORT of serve/start)")
    .option("--data-dir <dir>", "where the roles keep their data", ".groundskeeper-agent")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:7788")
    .option("--advertise <url>", "address Groundskeeper uses to reach this agent (default: the listen address)")
    .option("--roles <names>", "comma-separated roles to run", "volumes")
    .option("--heartbeat <ms>", "heartbeat interval", (v) => Number(v), 10_000)
    .option("--crl-refresh <ms>", "how often the CRL is fetched (callers on it are refused)", (v) => Number(v), 60_000)
    .action(
      async (
        opts: {
          credentials: string;
          gateway: string;
          dataDir: string;
          listen: string;
          advertise?: string;
          roles: string;
          heartbeat: number;
          crlRefresh: number;
        },
        cmd: Command,
      ) =>
        (await import("../boot.ts")).runApp(cmd, { database: false, secrets: false }, async (app) => {
          const { areaAgentRoles } = await import("../../areas.ts");
          const { runAgent } = await import("../../peers/agent/run.ts");
          const wanted = opts.roles.split(",").map((r) => r.trim());
          const unknown = wanted.filter((r) => !areaAgentRoles.some((a) => a.name === r));
          if (unknown.length) {
            throw new UserError(`unknown role(s) ${unknown.join(", ")}; known: ${areaAgentRoles.map((a) => a.name).join(", ")}`);
          }
          if (!/^https:\/\//.test(opts.gateway)) throw new UserError(`--gateway wants an https:// URL (got ${opts.gateway})`);
          const { host, port } = parseListen(opts.listen);
          const agent = await runAgent({
            credentialsDir: path.resolve(opts.credentials),
            gatewayUrl: opts.gateway,
            dataDir: path.resolve(opts.dataDir),
            host,
            port,
            advertise: opts.advertise,
            roles: areaAgentRoles.filter((r) => wanted.includes(r.name)),
            log: app.log,
            heartbeatIntervalMs: opts.heartbeat,
            crlRefreshMs: opts.crlRefresh,
          });
          app.life.add("agent", () => agent.stop());
          console.log(`agent listening on ${agent.url} (advertised as ${agent.address})`);
          void agent.registered.then(() => console.log("agent registered"));
        }),
    );
}
