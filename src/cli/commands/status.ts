// groundskeeper status: job queue depth by task, failed jobs, latest activation per task.
import type { Command } from "commander";
import { createPool } from "../../db/pool.ts";
import { cliContext, openDatabase } from "../context.ts";
import { collectStatus, renderStatus } from "../status/sections.ts";

export default function register(program: Command): void {
  program
    .command("status")
    .description("show the job queue by task, permanently failed jobs and the latest activation of each periodic task")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const db = await openDatabase(cliContext(cmd));
      const pool = createPool(db.url, 4);
      try {
        const data = await collectStatus(pool);
        console.log(opts.json ? JSON.stringify(data, null, 2) : renderStatus(data));
      } finally {
        await pool.end();
        await db.close();
      }
    });
}
