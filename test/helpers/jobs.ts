// Run queued jobs to completion in-process, with real services, the way a worker would.
import { runOnce } from "graphile-worker";
import { pino } from "pino";
import type { Services } from "../../src/services.ts";
import { quietWorkerLogger } from "../../src/lib/log.ts";
import { buildTaskList } from "../../src/worker/task-list.ts";
import type { TestDb } from "./db.ts";

export function testServices(extra: Partial<Services> = {}): Services {
  return { log: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }), ...extra };
}

/**
 * Runs every job that is due until none is left (jobs may enqueue more jobs).
 * Jobs that failed and wait for their retry are not due, so this always ends.
 */
export async function runJobs(db: TestDb, services: Services = testServices(), maxRounds = 50): Promise<void> {
  const taskList = await buildTaskList(services);
  for (let round = 0; round < maxRounds; round++) {
    if ((await dueJobs(db)) === 0) return;
    await runOnce({ connectionString: db.url, taskList, logger: quietWorkerLogger(), concurrency: 4 }, taskList);
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
