-- Up Migration
-- Sagas (src/worker/saga.ts): a list of steps, each an action and its undo, driven by
-- graphile-worker jobs. A saga's progress lives here so any worker can resume it after another
-- was killed: which step is next, what each action returned, and why it unwinds. Stored logic
-- in sql/040_sagas.sql.
create table gk_public.sagas (
  id uuid primary key default gen_random_uuid(),
  -- The task that drives it (tasks/<name>.ts, made with defineSaga).
  name text not null check (name ~ '^[a-z][a-z0-9_]{0,40}__[a-z][a-z0-9_]{0,40}$'),
  params jsonb not null check (jsonb_typeof(params) = 'object' and octet_length(params::text) <= 65536),
  -- The step names when it started: a worker whose definition differs refuses to drive it.
  steps text[] not null check (cardinality(steps) between 1 and 64 and array_ndims(steps) = 1),
  state text not null default 'running' check (state in ('running', 'unwinding', 'succeeded', 'failed')),
  -- running: the step to run next; unwinding: the step to undo next (down to 0).
  step int not null default 0,
  -- What each action returned, by step name (later steps and undos read them).
  outputs jsonb not null default '{}'::jsonb check (jsonb_typeof(outputs) = 'object' and octet_length(outputs::text) <= 262144),
  -- Why it unwinds: the failing step and its error.
  failed_step text,
  error text,
  -- The last failure of an undo (retried with backoff by the saga's job) and how many so far.
  undo_error text,
  undo_attempts int not null default 0 check (undo_attempts >= 0),
  -- Set by retry_saga (admins): a trigger enqueues the saga's job again.
  retry_requested_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint sagas_step_in_range check (step between 0 and cardinality(steps)),
  constraint sagas_finished check ((state in ('succeeded', 'failed')) = (finished_at is not null)),
  constraint sagas_unwinding_has_error check ((state in ('unwinding', 'failed')) = (error is not null and failed_step is not null)),
  constraint sagas_succeeded_ran_all check (state <> 'succeeded' or step = cardinality(steps))
);
-- Status, metrics and the saga list: unfinished sagas only.
create index sagas_unfinished_idx on gk_public.sagas (name, created_at) where finished_at is null;
-- Behind retention of finished sagas.
create index sagas_finished_at_idx on gk_public.sagas (finished_at) where finished_at is not null;
comment on table gk_public.sagas is 'Multi-step operations with undo (sagas): the next step, what each action returned, why one unwinds.';

-- What happened, step by step: done / failed on the way forward, undone / undo_failed back.
create table gk_public.saga_events (
  id bigint generated always as identity primary key,
  saga_id uuid not null references gk_public.sagas (id) on delete cascade,
  step int not null check (step >= 0),
  step_name text not null,
  event text not null check (event in ('done', 'failed', 'undone', 'undo_failed')),
  error text,
  at timestamptz not null default now()
);
create index saga_events_saga_id_idx on gk_public.saga_events (saga_id, id);
comment on table gk_public.saga_events is 'The history of each saga: every step done, failed, undone or whose undo failed.';

insert into gk_public.retention_policies (kind, retention, description)
values ('sagas', interval '30 days', 'Finished sagas (succeeded or failed) and their events older than this are deleted.')
on conflict (kind) do nothing;

-- Down Migration
-- The stored logic of sql/040_sagas.sql goes with the tables: its trigger, then its functions
-- by prefix (some return the table's row type).
drop view if exists gk_public.saga_summary;
drop trigger if exists _500_enqueue_retry on gk_public.sagas;
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private') and (p.proname like 'saga\_%' or p.proname in ('retry_saga', 'sagas_in_progress', 'retention_prune__sagas', 'tg_sagas__enqueue_retry'))
  loop
    execute format('drop function %s', f);
  end loop;
end $$;
delete from gk_public.retention_policies where kind = 'sagas';
drop table gk_public.saga_events;
drop table gk_public.sagas;
