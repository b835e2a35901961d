// The job queue (graphile-worker 0.18) as the rest of the code sees it. Reads go through the
// public graphile_worker.jobs view and admin functions (complete_jobs, force_unlock_workers);
// the only private access of the whole code base is here, marked PRIVATE, because the public
// interface has no way to do it. The stored logic's side is sql/060_queue.sql. Both are checked
// by test/worker/queue.test.ts, so a graphile-worker upgrade is judged by one test file.
import type { JobHelpers } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";

export interface QueuedJob {
  id: string;
  task: string;
  payload: any;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  run_at: Date;
  key: string | null;
  locked_by: string | null;
}

/**
 * Gives up on the running job: no further attempt, the job stays visible as permanently failed
 * with the error its task then throws. PRIVATE: permanently_fail_jobs refuses locked jobs, and the
 * job is locked by this very run.
 */
export async function failJobPermanently(helpers: JobHelpers): Promise<void> {
  await helpers.withPgClient((c) =>
    c.query("update graphile_worker._private_jobs set max_attempts = attempts where id = $1", [helpers.job.id]),
  );
}

/**
 * Jobs of a task (or all), oldest first, with their payloads. PRIVATE: the jobs view leaves the
 * payload out on purpose; tests and diagnostics read it from the jobs table, never a hot path.
 */
export async function listJobs(db: Queryable, task?: string): Promise<QueuedJob[]> {
  const { rows } = await db.query<QueuedJob>(
    `select v.id::text, v.task_identifier as task, p.payload, v.attempts, v.max_attempts, v.last_error, v.run_at, v.key, v.locked_by
       from graphile_worker.jobs v join graphile_worker._private_jobs p on p.id = v.id
      where $1::text is null or v.task_identifier = $1
      order by v.id`,
    [task ?? null],
  );
  return rows;
}

/** Jobs that are due and not locked (what a worker would pick up next). */
export async function dueJobCount(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from graphile_worker.jobs
      where run_at <= now() and attempts < max_attempts and locked_at is null`,
  );
  return rows[0].n;
}

/** Deletes every unlocked job (complete_jobs leaves locked ones alone). For tests and resets. */
export async function clearJobs(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "select count(*)::int as n from graphile_worker.complete_jobs(array(select id from graphile_worker.jobs))",
  );
  return rows[0].n;
}

/**
 * Releases every job and queue locked by these (gone) worker pools, the way the reaper does
 * (gk_private.queue_workers_release: graphile_worker.force_unlock_workers, and job-key-replaced
 * copies removed instead of left looking permanently failed; their running activations closed).
 */
export async function unlockWorkers(db: Queryable, workerIds: string[], reason = "its worker is gone"): Promise<void> {
  if (workerIds.length) await db.query("select gk_private.queue_workers_release($1::text[], $2)", [workerIds, reason]);
}

/** Pools holding jobs whose id starts with a prefix (e.g. runOnce's "otpool-"). */
export async function lockingWorkers(db: Queryable, prefix: string): Promise<string[]> {
  const { rows } = await db.query<{ locked_by: string }>(
    "select distinct locked_by from graphile_worker.jobs where locked_by like $1 || '%'",
    [prefix],
  );
  return rows.map((r) => r.locked_by);
}
