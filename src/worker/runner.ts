// The job runner: graphile-worker with our task list and crontab, signals handled by the caller.
import { parseCrontab, run, type Runner } from "graphile-worker";
import pg from "pg";
import type { Queryable } from "../db/pool.ts";
import type { Services } from "../services.ts";
import { workerLogger } from "../lib/log.ts";
import { readCrontab } from "./crontab.ts";
import { registerReconcilers } from "./reconciler-registry.ts";
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
}

export async function startWorker(opts: WorkerOptions): Promise<Runner> {
  const concurrency = opts.concurrency ?? 8;
  const crontab = opts.cron === false ? "" : readCrontab();
  await withDb(opts, registerReconcilers);
  return run({
    ...(opts.pgPool ? { pgPool: opts.pgPool } : { connectionString: opts.databaseUrl }),
    concurrency,
    maxPoolSize: Math.max(10, concurrency + 2),
    noHandleSignals: true,
    pollInterval: opts.pollInterval ?? 1000,
    taskList: await buildTaskList(opts.services),
    parsedCronItems: parseCrontab(crontab),
    logger: workerLogger(opts.services.log),
  });
}

/** Runs fn on the caller's pool, or on a connection of its own when graphile-worker makes the pool. */
async function withDb<T>(opts: WorkerOptions, fn: (db: Queryable) => Promise<T>): Promise<T> {
  if (opts.pgPool) return fn(opts.pgPool);
  const c = new pg.Client({ connectionString: opts.databaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
