-- Everything the stored logic reads from or does to graphile-worker's queue, in one file, through
-- its public interface only: the graphile_worker.jobs view and its admin functions
-- (add_job(s) in 000_enqueue.sql, complete_jobs, permanently_fail_jobs, force_unlock_workers).
-- An upgrade of graphile-worker is checked against this file and src/worker/queue.ts
-- (test/worker/queue.test.ts).

-- Jobs of a task that are due and waiting for a worker: while there are some, the workers are
-- behind, and re-enqueueing "overdue" bin items would only pile duplicates onto the queue.
-- (A short read inside the bin reconciler's one statement: the jobs view asks not to be read in
-- long transactions.)
create or replace function gk_private.task_backlog(task text) returns boolean
language sql stable
as $$
  select exists (
    select 1 from graphile_worker.jobs j
     where j.task_identifier = task_backlog.task
       and j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now());
$$;

-- The queue by task, for `groundskeeper status` and /metrics (read outside any transaction, as
-- the jobs view asks). A locked job is running even when its attempts ran out: job-key
-- replacement (a cron tick, activate_reconciler) marks the locked copy that way while it runs.
create or replace function gk_private.queue_jobs_by_task()
returns table (task text, ready int, scheduled int, running int, retrying int, failed int, oldest_due_s float8)
language sql stable
as $$
  select j.task_identifier,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())::int,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at > now())::int,
         count(*) filter (where j.locked_at is not null)::int,
         count(*) filter (where j.locked_at is null and j.attempts > 0 and j.attempts < j.max_attempts and j.last_error is not null)::int,
         count(*) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int,
         extract(epoch from now() - min(j.run_at) filter (where j.attempts < j.max_attempts and j.run_at <= now()))::float8
    from graphile_worker.jobs j
   group by j.task_identifier
   order by j.task_identifier;
$$;

-- The newest permanently failed jobs, with their last error.
create or replace function gk_private.queue_failed_jobs(max_rows int default 20)
returns table (id bigint, task text, attempts int, last_error text, updated_at timestamptz)
language sql stable
as $$
  select j.id, j.task_identifier, j.attempts::int, j.last_error, j.updated_at
    from graphile_worker.jobs j
   where j.locked_at is null and j.attempts >= j.max_attempts
   order by j.updated_at desc
   limit max_rows;
$$;

-- Retention kind `failed_jobs`: permanently failed jobs, once they have been inspectable for the
-- policy's retention, are deleted with graphile_worker.complete_jobs (oldest first, at most
-- max_rows), so gk_jobs_failed clears. (The jobs table has no index on updated_at; the queue is
-- small next to the history tables, and this runs hourly.)
create or replace function gk_private.retention_prune__failed_jobs(cutoff timestamptz, max_rows int)
returns bigint
language sql volatile
as $$
  select count(*) from graphile_worker.complete_jobs(array(
    select j.id from graphile_worker.jobs j
     where j.locked_at is null and j.attempts >= j.max_attempts and j.updated_at < cutoff
     order by j.updated_at
     limit max_rows));
$$;
