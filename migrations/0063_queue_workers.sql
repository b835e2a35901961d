-- Up Migration
-- Worker liveness: every job-runner pool (graphile-worker's worker pool; its id is what
-- graphile_worker.jobs.locked_by holds) registers here and heartbeats, each beat pushing its
-- expires_at forward by the worker's own TTL. A pool whose expires_at passed is dead: the reaper
-- (tasks/queue__reap_workers.ts, gk_private.queue_reap_workers in sql/060_queue.sql) releases its
-- jobs through graphile-worker's public force_unlock_workers instead of leaving them locked for
-- graphile-worker's 4 hours. A clean stop deletes the row.
create table gk_private.queue_workers (
  id text primary key check (length(id) between 1 and 200),
  hostname text not null check (length(hostname) between 1 and 255),
  pid int not null check (pid > 0),
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  expires_at timestamptz not null,
  check (expires_at > heartbeat_at)
);
comment on table gk_private.queue_workers is 'Live job-runner pools (graphile_worker.jobs.locked_by) and when each stops being trusted without a heartbeat.';
-- Behind the reaper's sweep and the heartbeat's "is anyone dead?" probe.
create index queue_workers_expires_idx on gk_private.queue_workers (expires_at);

-- Down Migration
-- The stored logic of sql/060_queue.sql built on the table goes with it (by prefix).
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'gk_private' and (p.proname like 'queue\_worker%' or p.proname = 'queue_reap_workers')
  loop
    execute format('drop function %s', f);
  end loop;
end;
$$;
drop table gk_private.queue_workers;
