// Run queued jobs to completion in-process, with real services, the way a worker would.
import { runOnce } from "graphile-worker";
import crypto from "node:crypto";
import { pino } from "pino";
import { SecretBox } from "../../src/lib/secrets.ts";
import type { Services } from "../../src/services.ts";
import { quietWorkerLogger } from "../../src/lib/log.ts";
import { clearJobs as clearQueue, dueJobCount, listJobs, lockingWorkers, unlockWorkers } from "../../src/worker/queue.ts";
import { buildTaskList } from "../../src/worker/task-list.ts";
import { createPool } from "../../src/db/pool.ts";
import type { TestDb } from "./db.ts";

/** One master key per test process: the worker seals parked keys, the HTTP server opens them. */
export const testSecrets = new SecretBox(crypto.randomBytes(32));

export function testServices(extra: Partial<Services> = {}): Services {
  return { log: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }), secrets: testSecrets, ...extra };
}

/**
 * Runs every job that is due until none is left (jobs may enqueue more jobs).
 * Jobs that failed and wait for their retry are not due, so this always ends.
 */
export async function runJobs(db: TestDb, services: Services = testServices(), maxRounds = 50): Promise<void> {
  const taskList = await buildTaskList(services);
  for (let round = 0; round < maxRounds; round++) {
    if ((await dueJobs(db)) === 0) return;
    // A pool per round, ended before going on: runOnce can resolve while a job's failure is still
    // being written; pool.end() waits for that client, so callers see last_error.
    const pgPool = createPool(db.url, 6);
    try {
      await runOnce({ pgPool, taskList, logger: quietWorkerLogger(), concurrency: 4 }, taskList);
    } finally {
      await pgPool.end();
    }
    // graphile-worker 0.18's runOnce sometimes returns with a job it fetched (locked) but never
    // ran (seen in ~1 of 6 runs). Its pool is gone, so release such jobs for the next round.
    await unlockWorkers(db, await lockingWorkers(db, "otpool-"));
  }
  throw new Error(`jobs still due after ${maxRounds} rounds`);
}

export async function dueJobs(db: TestDb): Promise<number> {
  return dueJobCount(db);
}

/** Jobs (of a task, or all) with their payload, attempts and last error, for assertions. */
export async function jobs(db: TestDb, task?: string) {
  return listJobs(db, task);
}

/** Removes every job that is not running (graphile_worker.complete_jobs). */
export async function clearJobs(db: TestDb): Promise<void> {
  await clearQueue(db);
}
