-- Everything the stored logic reads from or does to graphile-worker's queue, in one file, through
-- its public interface only: the graphile_worker.jobs view and its admin functions
-- (add_job(s) in 000_enqueue.sql, complete_jobs, permanently_fail_jobs, force_unlock_workers).
-- An upgrade of graphile-worker is checked against this file and src/worker/queue.ts
-- (test/worker/queue.test.ts). Worker liveness (gk_private.queue_workers) is here too: it is
-- the other half of what graphile-worker's locks mean.

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
-- A job locked by a pool whose heartbeat expired (gk_private.queue_workers) is not running but
-- stalled, until the reaper (queue_reap_workers) releases it.
drop function if exists gk_private.queue_jobs_by_task();
create or replace function gk_private.queue_jobs_by_task()
returns table (task text, ready int, scheduled int, running int, stalled int, retrying int, failed int, oldest_due_s float8)
language sql stable
as $$
  with dead as (select array(select w.id from gk_private.queue_workers w where w.expires_at < now()) as ids)
  select j.task_identifier,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())::int,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at > now())::int,
         count(*) filter (where j.locked_at is not null and not (j.locked_by = any(d.ids)))::int,
         count(*) filter (where j.locked_at is not null and j.locked_by = any(d.ids))::int,
         count(*) filter (where j.locked_at is null and j.attempts > 0 and j.attempts < j.max_attempts and j.last_error is not null)::int,
         count(*) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int,
         extract(epoch from now() - min(j.run_at) filter (where j.attempts < j.max_attempts and j.run_at <= now()))::float8
    from graphile_worker.jobs j cross join dead d
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

-- ---------------------------------------------------------------------------------------------
-- Worker liveness. Every job-runner pool registers in gk_private.queue_workers and heartbeats
-- (src/worker/heartbeat.ts, driven by src/worker/supervisor.ts); a pool whose expires_at passed
-- is dead, and queue_reap_workers (tasks/queue__reap_workers.ts) releases what it held.

-- What a gone pool held, released: its jobs and queues unlocked (graphile_worker's public
-- force_unlock_workers), its running activations closed as failed with the reason, its row
-- deleted. Before the locks go, its jobs are sorted by what happened to them:
--   superseded: job-key replacement (a cron tick or activate_reconciler while the job ran) gave
--     the key to a new job and marked this copy key = null, attempts = max_attempts, updated_at
--     past locked_at (graphile-worker updates a locked job in no other way). The new job carries
--     the work, so the copy is deleted (complete_jobs) instead of becoming a "permanently failed"
--     job with no error;
--   exhausted: the cut-off attempt was its last: permanently failed, with the reason;
--   released: the rest, which run again at once.
-- Returns those counts and the closed activations.
create or replace function gk_private.queue_workers_release(worker_ids text[], reason text)
returns jsonb
language plpgsql volatile
as $$
declare
  v_held int;
  v_superseded bigint[];
  v_exhausted bigint[];
  v_activations bigint[];
begin
  select count(*)::int,
         coalesce(array_agg(j.id order by j.id) filter (where j.superseded), '{}'),
         coalesce(array_agg(j.id order by j.id) filter (where j.attempts >= j.max_attempts and not j.superseded), '{}')
    into v_held, v_superseded, v_exhausted
    from (select x.id, x.attempts, x.max_attempts,
                 (x.attempts >= x.max_attempts and x.key is null and x.updated_at > x.locked_at) as superseded
            from graphile_worker.jobs x where x.locked_by = any(worker_ids)) j;
  perform graphile_worker.force_unlock_workers(worker_ids);
  perform graphile_worker.complete_jobs(v_superseded);
  perform graphile_worker.permanently_fail_jobs(v_exhausted, left(reason || ' during its last attempt', 4000));
  v_activations := gk_private.activations_close_orphaned(worker_ids, reason);
  delete from gk_private.queue_workers w where w.id = any(worker_ids);
  return jsonb_build_object(
    'released_jobs', v_held - cardinality(v_superseded) - cardinality(v_exhausted),
    'superseded_jobs', cardinality(v_superseded),
    'exhausted_jobs', cardinality(v_exhausted),
    'closed_activations', to_jsonb(v_activations));
end;
$$;

-- A pool's heartbeat; the first one registers it. Returns true when the row was new (for a
-- later beat: the reaper had given this pool up, so its jobs may have run twice). When another
-- pool's heartbeat expired, the reaper is activated now instead of at its next cron tick (unless
-- one is due or running already), so a dead pool's jobs are released within about one heartbeat
-- interval after its TTL. The reaper cannot release a pool that died while running the reaper
-- (that pool holds the reaper's queue): such a pool is released here.
create or replace function gk_private.queue_worker_heartbeat(worker_id text, hostname text, pid int, ttl_s int)
returns boolean
language plpgsql volatile
as $$
declare
  v_new boolean;
  v_dead text[];
begin
  if ttl_s is null or ttl_s not between 1 and 86400 then
    raise exception 'ttl_s must be between 1 and 86400 seconds, not %', ttl_s using errcode = '22023';
  end if;
  insert into gk_private.queue_workers as w (id, hostname, pid, expires_at)
  values (worker_id, left(hostname, 255), pid, now() + make_interval(secs => ttl_s))
  on conflict (id) do update set heartbeat_at = now(), expires_at = excluded.expires_at
  returning (xmax = 0) into v_new;
  v_dead := array(select w.id from gk_private.queue_workers w where w.expires_at < now());
  if cardinality(v_dead) = 0 or not exists (select 1 from gk_public.reconcilers r where r.name = 'queue__reap_workers') then
    return v_new;
  end if;
  perform gk_private.queue_workers_release(array_agg(distinct j.locked_by),
                                           'its worker stopped heartbeating while running the reaper')
     from graphile_worker.jobs j
    where j.task_identifier = 'queue__reap_workers' and j.locked_by = any(v_dead)
   having count(*) > 0;
  if not exists (select 1 from graphile_worker.jobs j
                  where j.task_identifier = 'queue__reap_workers'
                    and (j.locked_at is not null or (j.run_at <= now() and j.attempts < j.max_attempts))) then
    perform gk_private.reconciler_activate('queue__reap_workers');
  end if;
  return v_new;
end;
$$;

-- A clean stop: the pool released its jobs itself (src/worker/supervisor.ts).
create or replace function gk_private.queue_workers_deregister(worker_ids text[])
returns void
language sql volatile
as $$
  delete from gk_private.queue_workers w where w.id = any(worker_ids);
$$;

-- The reaper's entry point (tasks/queue__reap_workers.ts): pools whose heartbeat expired, oldest
-- first, at most max_workers (two reapers skip each other's rows), released.
create or replace function gk_private.queue_reap_workers(max_workers int)
returns jsonb
language plpgsql volatile
as $$
declare
  v_dead text[];
  v_result jsonb := jsonb_build_object('released_jobs', 0, 'superseded_jobs', 0, 'exhausted_jobs', 0, 'closed_activations', '[]'::jsonb);
begin
  v_dead := array(
    select w.id from gk_private.queue_workers w
     where w.expires_at < now()
     order by w.expires_at
     limit max_workers
       for update skip locked);
  if cardinality(v_dead) > 0 then
    v_result := gk_private.queue_workers_release(v_dead, 'its worker stopped heartbeating');
  end if;
  return v_result || jsonb_build_object(
    'reaped_workers', to_jsonb(v_dead),
    'live_workers', (select count(*) from gk_private.queue_workers w where w.expires_at >= now()),
    'more', exists (select 1 from gk_private.queue_workers w where w.expires_at < now() and w.id <> all(v_dead)));
end;
$$;

-- `groundskeeper status`: the registered pools, oldest first.
create or replace function gk_private.queue_workers_list()
returns table (id text, hostname text, pid int, started_at timestamptz, heartbeat_age_s float8, expired boolean, jobs int)
language sql stable
as $$
  select w.id, w.hostname, w.pid, w.started_at, extract(epoch from now() - w.heartbeat_at)::float8, w.expires_at < now(),
         (select count(*)::int from graphile_worker.jobs j where j.locked_by = w.id)
    from gk_private.queue_workers w
   order by w.started_at, w.id;
$$;
