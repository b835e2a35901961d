-- Reconciler activations (src/worker/reconciler.ts): an activation is opened when a reconciler
-- starts, closed with its typed status (details), numeric summary (counts) or error, and kept as
-- history until the retention kind `activations` prunes it. gk_private.activation_tasks points at
-- the latest activation of each task and keeps totals, so status and /metrics read one row per
-- task, never the history.

drop function if exists gk_private.activation_start(text);
create or replace function gk_private.activation_start(task text, worker_id text default null)
returns bigint
language plpgsql volatile
as $$
declare
  v_id bigint;
begin
  insert into gk_public.activations (task, worker_id) values (activation_start.task, activation_start.worker_id)
  returning id into v_id;
  insert into gk_private.activation_tasks as t (task, last_activation_id) values (activation_start.task, v_id)
  on conflict on constraint activation_tasks_pkey do update set last_activation_id = excluded.last_activation_id;
  return v_id;
end;
$$;

-- Totals per task for activations that just ended (activation_finish, activations_close_orphaned).
create or replace function gk_private.activation_tasks_record(ids bigint[])
returns void
language sql volatile
as $$
  insert into gk_private.activation_tasks as t (task, succeeded, failed, last_success_id)
  select a.task,
         count(*) filter (where a.status = 'succeeded'),
         count(*) filter (where a.status = 'failed'),
         max(a.id) filter (where a.status = 'succeeded')
    from gk_public.activations a
   where a.id = any(ids)
   group by a.task
  on conflict (task) do update
    set succeeded = t.succeeded + excluded.succeeded,
        failed = t.failed + excluded.failed,
        last_success_id = coalesce(greatest(t.last_success_id, excluded.last_success_id), t.last_success_id);
$$;

-- Closes a running activation; false when it was closed already (e.g. by the dead-worker sweep).
drop function if exists gk_private.activation_finish(bigint, jsonb, text);
create or replace function gk_private.activation_finish(
  activation_id bigint,
  counts jsonb,
  error text default null,
  details jsonb default null
) returns boolean
language plpgsql volatile
as $$
begin
  update gk_public.activations a
     set finished_at = clock_timestamp(),
         counts = coalesce(activation_finish.counts, '{}'::jsonb),
         details = coalesce(activation_finish.details, activation_finish.counts, '{}'::jsonb),
         status = case when activation_finish.error is null then 'succeeded' else 'failed' end,
         error = left(activation_finish.error, 4000)
   where a.id = activation_finish.activation_id and a.status = 'running';
  if not found then
    return false;
  end if;
  perform gk_private.activation_tasks_record(array[activation_id]);
  return true;
end;
$$;

create or replace function gk_private.activation_error(activation_id bigint, item text, error text)
returns void
language sql volatile
as $$
  insert into gk_public.activation_errors (activation_id, item, error) values ($1, left($2, 1000), left($3, 4000));
$$;

-- Running activations whose worker is gone are closed as failed, with why (the dead-worker sweep
-- in 060_queue.sql calls this). Returns the ids it closed.
create or replace function gk_private.activations_close_orphaned(worker_ids text[], reason text)
returns bigint[]
language plpgsql volatile
as $$
declare
  v_ids bigint[];
begin
  with closed as (
    update gk_public.activations a
       set status = 'failed', finished_at = clock_timestamp(), error = left(reason, 4000)
     where a.status = 'running' and a.worker_id = any(worker_ids)
    returning a.id)
  select coalesce(array_agg(id order by id), '{}') into v_ids from closed;
  perform gk_private.activation_tasks_record(v_ids);
  return v_ids;
end;
$$;

-- The latest activation of every task that ever ran, with its totals: one row per task, each
-- activation looked up by primary key. Read by /metrics and `groundskeeper status`.
create or replace function gk_private.activations_latest()
returns table (
  task text, id bigint, status text, started_at timestamptz, finished_at timestamptz, counts jsonb, details jsonb,
  error text, item_errors int, last_success_at timestamptz, succeeded bigint, failed bigint)
language sql stable
as $$
  -- LATERAL … LIMIT 1 keeps each lookup a probe of the primary key (a plain join may be planned
  -- as a merge or hash join over the whole history).
  select t.task, a.id, a.status, a.started_at, a.finished_at, a.counts, a.details, a.error,
         (select count(*)::int from gk_public.activation_errors e where e.activation_id = a.id),
         s.finished_at, t.succeeded, t.failed
    from gk_private.activation_tasks t
    left join lateral (select * from gk_public.activations x where x.id = t.last_activation_id limit 1) a on true
    left join lateral (select y.finished_at from gk_public.activations y where y.id = t.last_success_id limit 1) s on true
   order by t.task;
$$;

-- ---------------------------------------------------------------------------------------------
-- The registry of reconcilers (written at every migrate by registerReconcilers,
-- src/worker/reconciler-registry.ts) and "run it now".

create or replace function gk_private.reconcilers_register(reconcilers jsonb)
returns int
language plpgsql volatile
as $$
declare
  v_n int;
begin
  delete from gk_public.reconcilers g
   where g.name not in (select x.name from jsonb_to_recordset(reconcilers) as x (name text));
  insert into gk_public.reconcilers as g (name, description, schedule, job_key, queue_name)
  select x.name, x.description, x.schedule, x.job_key, x.queue_name
    from jsonb_to_recordset(reconcilers) as x (name text, description text, schedule text, job_key text, queue_name text)
  on conflict (name) do update
    set description = excluded.description, schedule = excluded.schedule, job_key = excluded.job_key,
        queue_name = excluded.queue_name
  where (g.description, g.schedule, g.job_key, g.queue_name)
        is distinct from (excluded.description, excluded.schedule, excluded.job_key, excluded.queue_name);
  get diagnostics v_n = row_count;
  -- A task that is no longer a reconciler leaves the metrics (its history stays until retention).
  delete from gk_private.activation_tasks t
   where t.task not in (select x.name from jsonb_to_recordset(reconcilers) as x (name text))
     and not exists (select 1 from gk_public.activations a where a.task = t.task and a.status = 'running');
  return v_n;
end;
$$;

-- Enqueue an activation with the crontab's job key and queue. Without run_at it runs now: a
-- pending activation is moved to now instead of being joined by a second one; one in progress
-- finishes first (same queue). With run_at (a follow-up when work remains) an earlier pending
-- activation is kept.
create or replace function gk_private.reconciler_activate(name text, run_at timestamptz default null)
returns void
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_r gk_public.reconcilers;
begin
  select * into v_r from gk_public.reconcilers r where r.name = reconciler_activate.name;
  if not found then
    raise exception 'no reconciler named % (known: %)', name,
      coalesce((select string_agg(r.name, ', ' order by r.name) from gk_public.reconcilers r), 'none registered')
      using errcode = 'P0002';
  end if;
  perform gk_private.enqueue(v_r.name, '{}'::jsonb,
                             job_key := v_r.job_key,
                             run_at := coalesce(reconciler_activate.run_at, now()),
                             queue_name := v_r.queue_name,
                             job_key_mode := case when reconciler_activate.run_at is null then 'replace' else 'preserve_run_at' end);
end;
$$;

-- SECURITY DEFINER (it enqueues through graphile_worker), so admin-only: 900_grants.sql keeps
-- the viewer off volatile definer functions.
create or replace function gk_public.activate_reconciler(task text)
returns gk_public.reconcilers
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_row gk_public.reconcilers;
begin
  if task is null or length(task) > 200 then
    raise exception 'task must be the name of a reconciler' using errcode = '22023';
  end if;
  perform gk_private.reconciler_activate(task);
  select * into v_row from gk_public.reconcilers r where r.name = activate_reconciler.task;
  return v_row;
end;
$$;
comment on function gk_public.activate_reconciler is 'Runs a periodic reconciler now. Its activation is enqueued with the crontab''s job key, so repeated calls do not pile up.';

-- GraphQL: Reconciler.lastActivation (one probe of activations_task_started_idx).
create or replace function gk_public.reconcilers_last_activation(r gk_public.reconcilers)
returns gk_public.activations
language sql stable
as $$
  select a.* from gk_public.activations a where a.task = r.name order by a.started_at desc limit 1;
$$;
comment on function gk_public.reconcilers_last_activation is 'The latest activation of this reconciler.';

-- ---------------------------------------------------------------------------------------------
-- Retention kind `activations`: finished history older than the cutoff, oldest first, at most
-- max_rows per call (activation_errors go with them). The latest and the latest successful
-- activation of every task stay. Walks the primary key, whose order is start order.
create or replace function gk_private.retention_prune__activations(cutoff timestamptz, max_rows int)
returns bigint
language sql volatile
as $$
  with doomed as (
    select a.id from gk_public.activations a
     where a.started_at < cutoff and a.status <> 'running'
       and not exists (select 1 from gk_private.activation_tasks t where a.id in (t.last_activation_id, t.last_success_id))
     order by a.id
     limit max_rows),
  gone as (delete from gk_public.activations a using doomed d where a.id = d.id returning 1)
  select count(*) from gone;
$$;
