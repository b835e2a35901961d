// `groundskeeper workers enroll NAME --out DIR`: run where the database is reachable. It makes
// the agent's key pair here (the key is written 0600 into DIR and never enters the database),
// requests the worker's certificate through the certificate lifecycle, waits for a worker to
// issue it, and writes key.pem, cert.pem and ca.pem for `groundskeeper agent --credentials DIR`.
import crypto from "node:crypto";
import type { Command } from "commander";
import { createPool } from "../db/pool.ts";
import { UserError } from "../lib/errors.ts";
import { writeCredentialsDir } from "../peers/tls.ts";
import { requireService } from "../services.ts";
import { cliContext, openDatabase } from "../cli/context.ts";
import { parsePositiveInt } from "../cli/options.ts";

export function registerWorkersCommand(program: Command): void {
  const workers = program.command("workers").description("build workers and their agents");
  workers
    .command("enroll")
    .description("enrol a build worker: make its agent's key, get its certificate issued, write its credentials")
    .argument("<name>", "worker name (a-z, 0-9, '.', '_', '-')")
    .requiredOption("-o, --out <dir>", "directory for key.pem, cert.pem, ca.pem")
    .option("--valid-for <interval>", "certificate validity (a PostgreSQL interval)", "365 days")
    .option("--wait <seconds>", "how long to wait for the certificate (a worker must be running)", parsePositiveInt, 60)
    .action(async (name: string, opts: { out: string; validFor: string; wait: number }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const { servicesFromEnv } = await import("../services-from-config.ts");
      const db = await openDatabase(ctx);
      const pool = createPool(db.url, 2);
      try {
        const services = await servicesFromEnv(ctx.log, ctx.config.home, process.env, { pool });
        const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
        const { rows } = await pool.query("select id from gk_public.enroll_worker($1, $2, $3::interval)", [
          name,
          publicKey.export({ type: "spki", format: "pem" }),
          opts.validFor,
        ]);
        const id = rows[0].id as string;
        const deadline = Date.now() + opts.wait * 1000;
        let pem: string | null = null;
        while (!pem) {
          pem = (await pool.query("select gk_public.download_certificate($1) as pem", [id])).rows[0].pem;
          if (pem) break;
          if (Date.now() > deadline) throw new UserError(`certificate ${id} not issued within ${opts.wait}s: is a worker running?`);
          await new Promise((r) => setTimeout(r, 500));
        }
        writeCredentialsDir(opts.out, {
          keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
          certPem: pem,
          caPem: await requireService(services, "ca").caCertificatePem(),
        });
        console.log(`worker ${name} enrolled (certificate ${id}); credentials in ${opts.out}`);
      } finally {
        await pool.end();
        await db.close();
      }
    });
}
