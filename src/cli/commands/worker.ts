// groundskeeper worker: the job runner (tasks/ + crontab). Run any number of them.
import type { Command } from "commander";
import { parsePositiveInt } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("worker")
    .description("run queued jobs and the periodic reconcilers of the crontab until stopped")
    .option("-c, --concurrency <n>", "jobs run at once (default: WORKER_CONCURRENCY or 8)", parsePositiveInt)
    .option("--no-cron", "do not schedule the crontab's periodic tasks in this process")
    .action(async (opts: { concurrency?: number; cron: boolean }, cmd: Command) => {
      const { runApp } = await import("../boot.ts");
      const { startWorkerPart } = await import("../parts.ts");
      return runApp(cmd, {}, (app) =>
        startWorkerPart(app, { concurrency: opts.concurrency ?? app.config.WORKER_CONCURRENCY, cron: opts.cron }),
      );
    });
}
