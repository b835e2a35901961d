// The job runner: graphile-worker with our task list and crontab, signals handled by the caller.
import { parseCrontab, run, type Runner, type WorkerEvents } from "graphile-worker";
import type pg from "pg";
import type { Services } from "../services.ts";
import { workerLogger } from "../lib/log.ts";
import { readCrontab } from "./crontab.ts";
import { buildTaskList } from "./task-list.ts";

export interface WorkerOptions {
  databaseUrl: string;
  /**
   * A pool owned by the caller, ended by the caller after the runner stopped. graphile-worker
   * ends a pool it created without awaiting it and removes its error handlers first, so idle
   * clients of that pool crash the process when the database then shuts down.
   */
  pgPool?: pg.Pool;
  services: Services;
  concurrency?: number;
  /** Run the crontab (periodic reconcilers). Identical crontabs on many workers are safe. */
  cron?: boolean;
  pollInterval?: number;
  /** graphile-worker's event emitter (src/worker/supervisor.ts learns the runner's pool id). */
  events?: WorkerEvents;
}

export async function startWorker(opts: WorkerOptions): Promise<Runner> {
  const concurrency = opts.concurrency ?? 8;
  const crontab = opts.cron === false ? "" : await readCrontab();
  return run({
    // graphile-worker 0.18 records a job's success or failure without awaiting it unless the
    // outcome goes through its batcher: then a graceful stop waits for the batch to be written
    // (otherwise the process exited with the finished job still locked for 4 hours), and a
    // failed write is reported through runner.promise instead of an unhandled rejection that
    // killed the process (a database blip at batchFailJobs). 0 ms: flushed on the next tick.
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    ...(opts.pgPool ? { pgPool: opts.pgPool } : { connectionString: opts.databaseUrl }),
    concurrency,
    maxPoolSize: Math.max(10, concurrency + 2),
    noHandleSignals: true,
    pollInterval: opts.pollInterval ?? 1000,
    taskList: await buildTaskList(opts.services),
    parsedCronItems: parseCrontab(crontab),
    logger: workerLogger(opts.services.log),
    ...(opts.events ? { events: opts.events } : {}),
  });
}
