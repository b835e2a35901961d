-- Up Migration
-- The reconciler contract (src/worker/reconciler.ts): every periodic task is registered here with
-- its description and the crontab's job key (activate_reconciler enqueues with it); an activation
-- stores its typed status JSON (details) and the graphile-worker pool that ran it (worker_id), so a
-- run cut off by a dead worker can be closed; activation_tasks keeps a pointer to the latest
-- activation per task and running totals, so /metrics reads one row per task instead of scanning
-- the history (which retention now prunes).
create table gk_public.reconcilers (
  name text primary key check (name ~ '^[a-z]+__[a-z_]+$'),
  description text not null check (length(description) between 1 and 500),
  -- The crontab pattern (UTC), null when the task only runs when activated.
  schedule text check (length(schedule) <= 100),
  job_key text not null check (length(job_key) between 1 and 200),
  -- The crontab's queue: activations of one reconciler run one after the other, never side by side.
  queue_name text check (length(queue_name) between 1 and 200),
  registered_at timestamptz not null default now()
);
comment on table gk_public.reconcilers is 'The periodic reconcilers (registered from tasks/ and the crontab at every migrate).';

alter table gk_public.activations
  add column details jsonb not null default '{}'::jsonb,
  add column worker_id text check (length(worker_id) <= 200);
comment on column gk_public.activations.details is 'The reconciler''s typed status: counts, lists (errors, items acted on) and the limits it ran with.';
comment on column gk_public.activations.worker_id is 'The graphile-worker pool that ran it (graphile_worker.jobs.locked_by).';
-- Behind the sweep that closes running activations of dead workers.
create index activations_running_worker_idx on gk_public.activations (worker_id) where status = 'running';

create table gk_private.activation_tasks (
  task text primary key,
  last_activation_id bigint references gk_public.activations (id) on delete set null,
  last_success_id bigint references gk_public.activations (id) on delete set null,
  succeeded bigint not null default 0 check (succeeded >= 0),
  failed bigint not null default 0 check (failed >= 0)
);
comment on table gk_private.activation_tasks is 'Per task: its latest and latest successful activation, and how many succeeded and failed (counters that survive pruning).';

insert into gk_private.activation_tasks (task, last_activation_id, last_success_id, succeeded, failed)
select a.task,
       (select l.id from gk_public.activations l where l.task = a.task order by l.started_at desc, l.id desc limit 1),
       (select s.id from gk_public.activations s where s.task = a.task and s.status = 'succeeded' order by s.started_at desc, s.id desc limit 1),
       count(*) filter (where a.status = 'succeeded'),
       count(*) filter (where a.status = 'failed')
  from gk_public.activations a
 group by a.task;

-- Down Migration
drop table gk_private.activation_tasks;
drop index gk_public.activations_running_worker_idx;
alter table gk_public.activations drop column worker_id, drop column details;
drop table gk_public.reconcilers cascade;
