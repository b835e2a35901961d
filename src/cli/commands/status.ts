// groundskeeper status: job queue depth by task, failed jobs, latest activation per task.
import type { Command } from "commander";

export default function register(program: Command): void {
  program
    .command("status")
    .description("show the job queue by task, permanently failed jobs, the latest activation of each periodic task and the bin")
    .option("--json", "print JSON")
    .option("--watch", "then show a progress bar while the bin drains to zero")
    .action(async (opts: { json?: boolean; watch?: boolean }, cmd: Command) => {
      const { cliContext, openDatabase } = await import("../context.ts");
      const { createPool } = await import("../../db/pool.ts");
      const { areaStatusSections } = await import("../../areas.ts");
      const { collectStatus, renderStatus, statusSections } = await import("../status/sections.ts");
      const db = await openDatabase(cliContext(cmd));
      const pool = createPool(db.url, 4);
      const sections = [...statusSections, ...areaStatusSections];
      try {
        const data = await collectStatus(pool, sections);
        console.log(opts.json ? JSON.stringify(data, null, 2) : renderStatus(data, sections));
        if (opts.watch) {
          const stop = new AbortController();
          const onSignal = () => stop.abort();
          process.once("SIGINT", onSignal);
          try {
            for (const s of sections) {
              if (s.watch && !stop.signal.aborted) console.log(await s.watch(pool, { signal: stop.signal }));
            }
          } finally {
            process.off("SIGINT", onSignal);
          }
        }
      } finally {
        await pool.end();
        await db.close();
      }
    });
}
