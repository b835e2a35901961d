-- The bin's machinery, shared by every kind of pending deletion: leases and backoff, the registry
-- of kinds (gk_public.bin_kinds) and the dispatchers over it, and the purge table for rowless
-- deletions. A kind lives in its area's files (e.g. 021_bin_blob_prefix.sql, 310_certificates_bin.sql):
--   gk_private.bin__<kind>                    a view of its pending items: ref, team_id,
--                                              enqueued_at, attempts, last_error, next_attempt_at
--   gk_private.bin_redispatch__<kind>(int)    re-enqueues at most n items whose lease ran out;
--                                              returns jsonb {"redispatched": n, "busy": bool, …}
--   gk_private.bin_retry__<kind>(text)        an operator's retry of one item; false if not pending
--   select gk_private.bin_kind_register(…)    after the three are defined
-- The bin view itself is generated from the registry in 850_bin.sql, after every area's file.

-- How long a pending item may go untouched before the bin reconciler re-enqueues it. A live task
-- either finishes, records a failure (which pushes this forward), or holds the row lock; only a
-- dead task lets the lease run out. Tests shorten it with
-- `alter database … set groundskeeper.bin_lease = '1 second'`.
create or replace function gk_private.bin_lease() returns interval
language sql stable
as $$
  select coalesce(nullif(current_setting('groundskeeper.bin_lease', true), '')::interval, interval '2 minutes');
$$;

-- Backoff after a failed attempt (mirrors graphile-worker's exp(least(10, attempt)) seconds).
create or replace function gk_private.bin_backoff(attempts int) returns interval
language sql immutable
as $$
  select make_interval(secs => exp(least(10, greatest(attempts, 1))));
$$;

-- ---------------------------------------------------------------------------------------------
-- The registry.

-- Registers (or updates) a kind. Its view and functions must exist already, so a kind that is
-- half defined fails the migration instead of the bin at run time.
create or replace function gk_private.bin_kind_register(kind text, area text, description text, purge_task text default null)
returns void
language plpgsql volatile
as $$
declare
  v_missing text[];
begin
  select array_agg(m) into v_missing from unnest(array[
    case when to_regclass(format('gk_private.%I', 'bin__' || kind)) is null then format('view gk_private.bin__%s', kind) end,
    case when to_regprocedure(format('gk_private.%I(integer)', 'bin_redispatch__' || kind)) is null
         then format('function gk_private.bin_redispatch__%s(integer)', kind) end,
    case when to_regprocedure(format('gk_private.%I(text)', 'bin_retry__' || kind)) is null
         then format('function gk_private.bin_retry__%s(text)', kind) end]) m
   where m is not null;
  if v_missing is not null then
    raise exception 'bin kind % is missing %', kind, array_to_string(v_missing, ', ') using errcode = '42883';
  end if;
  insert into gk_public.bin_kinds as k (kind, area, description, purge_task)
  values (bin_kind_register.kind, bin_kind_register.area, bin_kind_register.description, bin_kind_register.purge_task)
  on conflict on constraint bin_kinds_pkey do update
    set area = excluded.area, description = excluded.description, purge_task = excluded.purge_task
  where (k.area, k.description, k.purge_task) is distinct from (excluded.area, excluded.description, excluded.purge_task);
end;
$$;

-- The bin reconciler (tasks/bin__reconcile.ts): every kind re-enqueues its items whose lease ran
-- out (their job is gone, permanently failed, or held by a dead worker), at most max_items each.
-- A kind that fails is reported under "errors" ({kind, error}) and the others still run.
create or replace function gk_private.bin_redispatch(max_items int default 10000)
returns jsonb
language plpgsql volatile
as $$
declare
  k record;
  v_res jsonb;
  v_kinds jsonb := '{}';
  v_errors jsonb := '[]';
begin
  for k in select b.kind from gk_public.bin_kinds b order by b.kind loop
    begin
      execute format('select gk_private.%I($1)', 'bin_redispatch__' || k.kind) into v_res using max_items;
      v_kinds := v_kinds || jsonb_build_object(k.kind, coalesce(v_res, '{}'));
    exception when others then
      v_errors := v_errors || jsonb_build_object('kind', k.kind, 'error', sqlerrm);
    end;
  end loop;
  return jsonb_build_object('kinds', v_kinds, 'errors', v_errors);
end;
$$;

-- An operator retries one item now (after fixing what made it fail); the kind's triggers enqueue
-- it. SECURITY DEFINER so the kind's function (in gk_private) can run: admin-only, like every
-- volatile definer function (900_grants.sql).
create or replace function gk_public.retry_bin_item(kind text, ref text)
returns boolean
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_ok boolean;
begin
  if not exists (select 1 from gk_public.bin_kinds b where b.kind = retry_bin_item.kind) then
    raise exception 'unknown bin item kind % (known: %)', kind,
      (select string_agg(b.kind, ', ' order by b.kind) from gk_public.bin_kinds b) using errcode = '22023';
  end if;
  if ref is null or length(ref) > 1024 then
    raise exception 'bin item ref must be 1 to 1024 characters' using errcode = '22023';
  end if;
  execute format('select gk_private.%I($1)', 'bin_retry__' || kind) into v_ok using ref;
  if not coalesce(v_ok, false) then
    raise exception 'no pending bin item % %', kind, ref using errcode = 'P0002';
  end if;
  return true;
end;
$$;
comment on function gk_public.retry_bin_item is 'Retries a pending bin item now (e.g. after the CA or blob store came back).';

-- ---------------------------------------------------------------------------------------------
-- The purge table: kinds without a row of their own (a deleted team's blob prefix). A kind backed
-- by purge_items registers its purge_task and delegates to the helpers below.

-- One job per new item, and per retried one, for the task its kind registered.
create or replace function gk_private.purge_items_enqueue(ids bigint[]) returns void
language plpgsql volatile
as $$
declare
  k record;
begin
  for k in
    select b.purge_task as task, array_agg(jsonb_build_object('id', p.id) order by p.id) as payloads
      from gk_public.purge_items p
      join gk_public.bin_kinds b on b.kind = p.kind
     where p.id = any(ids) and p.completed_at is null and b.purge_task is not null
     group by b.purge_task
  loop
    perform gk_private.enqueue_many(k.task, k.payloads);
  end loop;
end;
$$;

create or replace function gk_private.tg_purge_items__enqueue() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    perform gk_private.purge_items_enqueue(array(select n.id from new_rows n));
  else
    perform gk_private.purge_items_enqueue(array(
      select n.id from new_rows n join old_rows o on o.id = n.id where n.retry_requested_at is distinct from o.retry_requested_at));
  end if;
  return null;
end;
$$;

drop trigger if exists _500_enqueue_insert on gk_public.purge_items;
create trigger _500_enqueue_insert
  after insert on gk_public.purge_items
  referencing new table as new_rows
  for each statement execute function gk_private.tg_purge_items__enqueue();
drop trigger if exists _500_enqueue_retry on gk_public.purge_items;
create trigger _500_enqueue_retry
  after update on gk_public.purge_items
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_purge_items__enqueue();

-- Re-enqueues a purge_items kind's items whose lease ran out (the kind's bin_redispatch__<kind>
-- calls this). Rows a live task holds are skipped (row lock); while the kind's queue still has
-- jobs waiting for a worker, nothing is added (re-enqueueing would only pile duplicates on it).
create or replace function gk_private.purge_items_redispatch(kind text, max_items int)
returns jsonb
language plpgsql volatile
as $$
declare
  v_task text := (select b.purge_task from gk_public.bin_kinds b where b.kind = purge_items_redispatch.kind);
  v_busy boolean := gk_private.task_backlog(v_task);
  v_ids bigint[];
begin
  if v_busy then
    return jsonb_build_object('redispatched', 0, 'busy', true);
  end if;
  with due as (
    select p.id from gk_public.purge_items p
     where p.kind = purge_items_redispatch.kind and p.completed_at is null and p.next_attempt_at <= now()
     order by p.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.purge_items p set next_attempt_at = now() + gk_private.bin_lease()
      from due where p.id = due.id
    returning p.id)
  select array_agg(id order by id) into v_ids from bumped;
  perform gk_private.enqueue_many(v_task, array(select jsonb_build_object('id', i) from unnest(v_ids) i));
  return jsonb_build_object('redispatched', coalesce(cardinality(v_ids), 0), 'busy', false);
end;
$$;

create or replace function gk_private.purge_items_retry(kind text, ref text)
returns boolean
language sql volatile
as $$
  update gk_public.purge_items p set retry_requested_at = clock_timestamp()
   where p.kind = purge_items_retry.kind and p.ref = purge_items_retry.ref and p.completed_at is null
  returning true;
$$;

-- Outcomes recorded by the purge tasks (blobs__purge_prefix). Progress is write-ahead: the task
-- records the page it is about to delete (pending_until, the count including it), then the cursor
-- once it is deleted; every call renews the item's lease (the running purge's heartbeat).
drop function if exists gk_private.purge_item_progress(bigint, text, bigint);
create or replace function gk_private.purge_item_progress(id bigint, cursor text, pending_until text, counted bigint)
returns void
language sql volatile
as $$
  update gk_public.purge_items p
     set progress_after = coalesce(purge_item_progress.cursor, p.progress_after),
         progress_pending_until = coalesce(purge_item_progress.pending_until, p.progress_pending_until),
         progress_count = greatest(p.progress_count, coalesce(purge_item_progress.counted, 0)),
         next_attempt_at = now() + gk_private.bin_lease()
   where p.id = purge_item_progress.id and p.completed_at is null;
$$;

create or replace function gk_private.purge_item_completed(id bigint)
returns boolean
language sql volatile
as $$
  update gk_public.purge_items p set completed_at = now(), last_error = null
   where p.id = purge_item_completed.id and p.completed_at is null
  returning true;
$$;

create or replace function gk_private.purge_item_failed(id bigint, error text)
returns void
language sql volatile
as $$
  update gk_public.purge_items p
     set attempts = p.attempts + 1,
         last_error = left(error, 2000),
         next_attempt_at = now() + gk_private.bin_backoff(p.attempts + 1) + gk_private.bin_lease()
   where p.id = purge_item_failed.id and p.completed_at is null;
$$;

-- Retention kind `purge_items`: completed items are the bin's history; kept a while for
-- operators, then pruned oldest first (purge_items_completed_at_idx), at most max_rows per call.
drop function if exists gk_private.retention_prune__purge_items(timestamptz);
create or replace function gk_private.retention_prune__purge_items(cutoff timestamptz, max_rows int) returns bigint
language sql volatile
as $$
  with doomed as (
    select p.id from gk_public.purge_items p
     where p.completed_at is not null and p.completed_at < cutoff
     order by p.completed_at
     limit max_rows),
  gone as (delete from gk_public.purge_items p using doomed d where p.id = d.id returning 1)
  select count(*) from gone;
$$;

comment on table gk_public.purge_items is E'@behavior -insert -update -delete\nDeletions of things that have no row any more (a deleted team''s blob prefix), with progress and last error.';
comment on table gk_public.bin_kinds is E'@behavior -insert -update -delete\nThe kinds of pending deletions the bin lists, and the area that owns each.';
grant select on gk_public.purge_items, gk_public.bin_kinds to gk_viewer, gk_admin;
grant update (retry_requested_at) on gk_public.purge_items to gk_admin;
