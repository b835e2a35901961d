// Run queued jobs to completion in-process, with real services, the way a worker would.
import { runOnce } from "graphile-worker";
import crypto from "node:crypto";
import { pino } from "pino";
import { SecretBox } from "../../src/lib/secrets.ts";
import type { Services } from "../../src/services.ts";
import { quietWorkerLogger } from "../../src/lib/log.ts";
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
    await db.query(
      `select graphile_worker.force_unlock_workers(array(
         select distinct locked_by from graphile_worker._private_jobs where locked_by like 'otpool-%'))`,
    );
  }
  throw new Error(`jobs still due after ${maxRounds} rounds`);
}

export async function dueJobs(db: TestDb): Promise<number> {
  const { rows } = await db.query(
    `select count(*)::int as n from graphile_worker._private_jobs
      where run_at <= now() and attempts < max_attempts and locked_at is null`,
  );
  return rows[0].n;
}

/** Jobs (of a task, or all) with their attempts and last error, for assertions. */
export async function jobs(db: TestDb, task?: string) {
  const { rows } = await db.query(
    `select j.id, t.identifier as task, j.payload, j.attempts, j.max_attempts, j.last_error, j.run_at
       from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where $1::text is null or t.identifier = $1 order by j.id`,
    [task ?? null],
  );
  return rows;
}
