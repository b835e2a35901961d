// groundskeeper worker: the job runner (tasks/ + crontab). Run any number of them.
import type { Command } from "commander";
import { cliContext, openDatabase } from "../context.ts";
import { Lifecycle, stopRunner, workerPool } from "../lifecycle.ts";
import { parsePositiveInt } from "../options.ts";

export default function register(program: Command): void {
  program
    .command("worker")
    .description("run queued jobs and the periodic reconcilers of the crontab until stopped")
    .option("-c, --concurrency <n>", "jobs run at once (default: WORKER_CONCURRENCY or 8)", parsePositiveInt)
    .option("--no-cron", "do not schedule the crontab's periodic tasks in this process")
    .action(async (opts: { concurrency?: number; cron: boolean }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const { startWorker } = await import("../../worker/runner.ts");
      const { servicesFromEnv } = await import("../../services-from-config.ts");
      const life = new Lifecycle(ctx.log);
      const db = await openDatabase(ctx);
      life.add("database", () => db.close());
      try {
        const services = await servicesFromEnv(ctx.log, ctx.config.home);
        const concurrency = opts.concurrency ?? ctx.config.WORKER_CONCURRENCY;
        const pgPool = workerPool(db.url, concurrency);
        const runner = await startWorker({ databaseUrl: db.url, pgPool, services, concurrency, cron: opts.cron }).catch(async (e) => {
          await pgPool.end();
          throw e;
        });
        // stop(): no new jobs; running jobs finish (or are released to be retried).
        life.add("worker", () => stopRunner(runner, pgPool));
        runner.promise.catch((e) => life.fail("worker", e));
        ctx.log.info({ concurrency, cron: opts.cron }, "worker running");
      } catch (e) {
        await life.stop(1);
        throw e;
      }
      process.exitCode = await life.done();
    });
}
