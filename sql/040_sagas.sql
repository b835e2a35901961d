-- Sagas (src/worker/saga.ts; tables in migrations/0071_sagas.sql). Every transition is
-- conditional on the step the caller ran, so a second runner (a duplicate job, a worker that
-- was thought dead) cannot move a saga twice; each returns the row, or nothing when the saga
-- was not where the caller thought.

-- Starts a saga: its row, and the job that drives it (task = the saga's name). Called in the
-- caller's transaction, so a saga exists exactly when what decided to start it committed.
create or replace function gk_private.saga_start(name text, steps text[], params jsonb)
returns uuid
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_id uuid;
begin
  insert into gk_public.sagas (name, steps, params) values (name, steps, params) returning id into v_id;
  perform gk_private.saga_enqueue(v_id, name);
  return v_id;
end;
$$;

-- Starts one saga per params (in order) and enqueues one job per batch_size of them, in one
-- add_jobs call: a reconciler starting thousands pays ~30 µs a job, not ~1 ms a saga, and each
-- job drives its batch a step at a time (runSagas). Retries and redispatch still enqueue a
-- saga on its own (saga_enqueue).
create or replace function gk_private.saga_start_many(name text, steps text[], params jsonb[], batch_size int)
returns table (id uuid)
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_ids uuid[] := array(select gen_random_uuid() from generate_series(1, cardinality(params)));
begin
  if batch_size is null or batch_size not between 1 and 100 then
    raise exception 'batch_size must be 1 to 100, not %', batch_size using errcode = '22023';
  end if;
  insert into gk_public.sagas (id, name, steps, params)
  select x.id, saga_start_many.name, saga_start_many.steps, x.p from unnest(v_ids, params) x(id, p);
  perform gk_private.enqueue_many(saga_start_many.name, array(
    select jsonb_build_object('saga_ids', jsonb_agg(u.id order by u.o))
      from unnest(v_ids) with ordinality u(id, o)
     group by (u.o - 1) / batch_size));
  return query select u.id from unnest(v_ids) with ordinality u(id, o) order by u.o;
end;
$$;

-- One job per saga (job key saga:<id>): a second enqueue replaces a waiting one.
create or replace function gk_private.saga_enqueue(id uuid, name text)
returns void
language sql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
  select gk_private.enqueue(name, jsonb_build_object('saga_id', id), job_key := 'saga:' || id);
$$;

create or replace function gk_private.saga_event(saga gk_public.sagas, step int, event text, error text default null)
returns gk_public.sagas
language sql volatile
as $$
  insert into gk_public.saga_events (saga_id, step, step_name, event, error)
  values (saga.id, step, saga.steps[step + 1], event, error);
  select saga;
$$;

-- The actions of `steps` completed with `outputs` (one entry per saga, a batch in one
-- statement): each on to its next step, or succeeded after the last; one event each.
create or replace function gk_private.saga_steps_done(ids uuid[], steps int[], outputs jsonb[])
returns setof gk_public.sagas
language sql volatile
as $$
  with moved as (
    update gk_public.sagas s
       set step = s.step + 1,
           outputs = s.outputs || jsonb_build_object(s.steps[s.step + 1], x.output),
           state = case when s.step + 1 = cardinality(s.steps) then 'succeeded' else 'running' end,
           finished_at = case when s.step + 1 = cardinality(s.steps) then now() end,
           updated_at = now()
      from unnest(saga_steps_done.ids, saga_steps_done.steps, saga_steps_done.outputs) x(id, step, output)
     where s.id = x.id and s.state = 'running' and s.step = x.step
    returning row(s.*)::gk_public.sagas as saga, x.step),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event)
    select (m.saga).id, m.step, (m.saga).steps[m.step + 1], 'done' from moved m)
  select (m.saga).* from moved m;
$$;

-- The actions of `counts` steps from `steps` on completed (one entry per saga, a batch in one
-- statement; several steps when the engine recorded them together, SagaStep.recordWithNext):
-- `outputs` holds each one's output by step name. Each saga moves on past them, or succeeded
-- after the last; with done_events, one `done` event per step (SagaDefinition.doneEvents).
create or replace function gk_private.saga_steps_advanced(ids uuid[], steps int[], counts int[], outputs jsonb[], done_events boolean)
returns setof gk_public.sagas
language sql volatile
as $$
  with moved as (
    update gk_public.sagas s
       set step = s.step + x.n,
           outputs = s.outputs || x.outputs,
           state = case when s.step + x.n = cardinality(s.steps) then 'succeeded' else 'running' end,
           finished_at = case when s.step + x.n = cardinality(s.steps) then now() end,
           updated_at = now()
      from unnest(saga_steps_advanced.ids, saga_steps_advanced.steps, saga_steps_advanced.counts, saga_steps_advanced.outputs)
           x(id, step, n, outputs)
     where s.id = x.id and s.state = 'running' and s.step = x.step and x.n between 1 and cardinality(s.steps) - s.step
    returning row(s.*)::gk_public.sagas as saga, x.step, x.n),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event)
    select (m.saga).id, k, (m.saga).steps[k + 1], 'done'
      from moved m cross join lateral generate_series(m.step, m.step + m.n - 1) k
     where done_events
     order by (m.saga).id, k)
  select (m.saga).* from moved m;
$$;

create or replace function gk_private.saga_step_done(id uuid, step int, output jsonb)
returns gk_public.sagas
language sql volatile
as $$
  select * from gk_private.saga_steps_done(array[id], array[step], array[output]);
$$;

-- The actions of `steps` failed: each unwinds, starting with that step's own undo (an undo must
-- be safe whether its action ran, ran partly or not at all).
create or replace function gk_private.saga_steps_failed(ids uuid[], steps int[], errors text[])
returns setof gk_public.sagas
language sql volatile
as $$
  with moved as (
    update gk_public.sagas s
       set state = 'unwinding', failed_step = s.steps[s.step + 1], error = left(x.error, 2000), updated_at = now()
      from unnest(saga_steps_failed.ids, saga_steps_failed.steps, saga_steps_failed.errors) x(id, step, error)
     where s.id = x.id and s.state = 'running' and s.step = x.step
    returning row(s.*)::gk_public.sagas as saga, x.step, left(x.error, 2000) as error),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event, error)
    select (m.saga).id, m.step, (m.saga).steps[m.step + 1], 'failed', m.error from moved m)
  select (m.saga).* from moved m;
$$;

create or replace function gk_private.saga_step_failed(id uuid, step int, error text)
returns gk_public.sagas
language sql volatile
as $$
  select * from gk_private.saga_steps_failed(array[id], array[step], array[error]);
$$;

-- The undo of `step` completed: on to the step before, or failed (fully unwound) after step 0.
create or replace function gk_private.saga_step_undone(id uuid, step int)
returns gk_public.sagas
language sql volatile
as $$
  with moved as (
    update gk_public.sagas s
       set step = greatest(s.step - 1, 0),
           state = case when s.step = 0 then 'failed' else 'unwinding' end,
           finished_at = case when s.step = 0 then now() end,
           undo_error = null, undo_attempts = 0, updated_at = now()
     where s.id = saga_step_undone.id and s.state = 'unwinding' and s.step = saga_step_undone.step
    returning s.*)
  select gk_private.saga_event(m, saga_step_undone.step, 'undone') from moved m;
$$;

-- The undo of `step` failed: recorded, and the job retries it with backoff.
create or replace function gk_private.saga_undo_failed(id uuid, step int, error text)
returns gk_public.sagas
language sql volatile
as $$
  with moved as (
    update gk_public.sagas s
       set undo_error = left(saga_undo_failed.error, 2000), undo_attempts = s.undo_attempts + 1, updated_at = now()
     where s.id = saga_undo_failed.id and s.state = 'unwinding' and s.step = saga_undo_failed.step
    returning s.*)
  select gk_private.saga_event(m, saga_undo_failed.step, 'undo_failed', left(saga_undo_failed.error, 2000)) from moved m;
$$;

-- Operators: drive an unfinished saga again now (its job ran out of attempts, or an undo kept
-- failing until its cause was fixed). SECURITY INVOKER: the column grant decides who may; the
-- trigger below enqueues.
create or replace function gk_public.retry_saga(id uuid)
returns boolean
language plpgsql volatile
as $$
begin
  update gk_public.sagas s set retry_requested_at = clock_timestamp() where s.id = retry_saga.id and s.finished_at is null;
  if not found then
    raise exception 'no unfinished saga %', id using errcode = 'P0002';
  end if;
  return true;
end;
$$;
comment on function gk_public.retry_saga is 'Drives an unfinished saga again now (after its job gave up, or once the cause of a failing undo is fixed).';

-- A row trigger on the one column, with WHEN: it fires only for an update that sets
-- retry_requested_at (retry_saga, a bin retry), never for the engine's records of every step.
-- (A statement trigger with transition tables copied every updated saga row of every batch.)
drop trigger if exists _500_enqueue_retry on gk_public.sagas;
drop function if exists gk_private.tg_sagas__enqueue_retry();
create function gk_private.tg_sagas__enqueue_retry() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  perform gk_private.saga_enqueue(new.id, new.name);
  return null;
end;
$$;

create trigger _500_enqueue_retry
  after update of retry_requested_at on gk_public.sagas
  for each row when (new.finished_at is null and new.retry_requested_at is distinct from old.retry_requested_at)
  execute function gk_private.tg_sagas__enqueue_retry();

-- Finished sagas are history (their events go with them); at most max_rows per call (the
-- policy's max_per_activation), the rest next time; sagas_finished_at_idx serves the oldest first.
drop function if exists gk_private.retention_prune__sagas(timestamptz);
create or replace function gk_private.retention_prune__sagas(cutoff timestamptz, max_rows int) returns bigint
language sql volatile
as $$
  with gone as (
    delete from gk_public.sagas s
     where s.id in (select id from gk_public.sagas where finished_at < cutoff order by finished_at limit max_rows)
    returning 1)
  select count(*) from gone;
$$;

-- The admin API's list of sagas in progress (oldest first), optionally of one saga name.
create or replace function gk_public.sagas_in_progress(name text default null)
returns setof gk_public.sagas
language sql stable
as $$
  select s.* from gk_public.sagas s
   where s.finished_at is null and (sagas_in_progress.name is null or s.name = sagas_in_progress.name)
   order by s.created_at
$$;
comment on function gk_public.sagas_in_progress is 'Sagas running or unwinding, oldest first (optionally of one saga name).';

-- Sagas in progress, by name and state (status, metrics): reads only unfinished rows
-- (sagas_unfinished_idx), however long the history.
create or replace view gk_public.saga_summary as
  select s.name, s.state, count(*)::int as sagas,
         extract(epoch from now() - min(s.created_at))::float8 as oldest_age_seconds,
         count(*) filter (where s.undo_error is not null)::int as undo_failing
    from gk_public.sagas s
   where s.finished_at is null
   group by s.name, s.state;
comment on view gk_public.saga_summary is 'Sagas in progress by name and state: how many, the oldest one''s age, how many have a failing undo.';

comment on table gk_public.sagas is E'@behavior -insert -update -delete\n@name saga\nMulti-step operations with undo (sagas): the next step, what each action returned, why one unwinds.';
comment on table gk_public.saga_events is E'@behavior -insert -update -delete\nThe history of each saga: every step done, failed, undone or whose undo failed.';
grant select on gk_public.sagas, gk_public.saga_events, gk_public.saga_summary to gk_viewer, gk_admin;
grant update (retry_requested_at) on gk_public.sagas to gk_admin;
