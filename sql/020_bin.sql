-- The bin's machinery: leases and backoff for every pending item, the purge table's logic (rowless
-- deletions such as a deleted team's blob prefix), an operator's retry, and the reconciler that
-- re-enqueues anything whose job is gone. The bin view itself is in 850_bin.sql (it lists every
-- area's pending items, so it comes after all of them).

-- How long a pending item may go untouched before the bin reconciler re-enqueues it. A live task
-- either finishes, records a failure (which pushes this forward), or holds the row lock; only a
-- dead task (SIGKILL: its graphile-worker job stays locked for 4 h) lets the lease run out.
-- Tests shorten it with `alter database … set groundskeeper.bin_lease = '1 second'`.
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

-- Where a team's blobs live in the blob store (the purge deletes everything under it).
create or replace function gk_public.team_blob_prefix(team_id uuid) returns text
language sql immutable strict
as $$
  select 'teams/' || team_id::text || '/';
$$;
comment on function gk_public.team_blob_prefix is 'The blob store prefix holding a team''s objects; purged when the team is deleted.';

-- A deleted team's blob prefix goes to the bin in the same statement (plain SQL or GraphQL).
create or replace function gk_private.tg_teams__purge_blobs() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  insert into gk_public.purge_items (kind, ref, team_id)
  select 'blob_prefix', gk_public.team_blob_prefix(o.id), o.id from old_rows o
  on conflict (kind, ref) where completed_at is null do nothing;
  return null;
end;
$$;

drop trigger if exists _500_purge_blobs on gk_public.teams;
create trigger _500_purge_blobs
  after delete on gk_public.teams
  referencing old table as old_rows
  for each statement execute function gk_private.tg_teams__purge_blobs();

-- One job per new purge item (a prefix is paged through inside its job).
create or replace function gk_private.tg_purge_items__enqueue() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    perform gk_private.enqueue_many('blobs__purge_prefix',
      array(select jsonb_build_object('id', n.id) from new_rows n where n.kind = 'blob_prefix' and n.completed_at is null));
  else
    perform gk_private.enqueue_many('blobs__purge_prefix',
      array(select jsonb_build_object('id', n.id) from new_rows n join old_rows o on o.id = n.id
             where n.kind = 'blob_prefix' and n.completed_at is null
               and n.retry_requested_at is distinct from o.retry_requested_at));
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

-- Outcomes recorded by blobs__purge_prefix.
drop function if exists gk_private.purge_item_progress(bigint, text, bigint);
create or replace function gk_private.purge_item_progress(id bigint, cursor text, deleted_so_far bigint)
returns void
language sql volatile
as $$
  update gk_public.purge_items p
     set progress_after = purge_item_progress.cursor,
         progress_count = greatest(p.progress_count, purge_item_progress.deleted_so_far),
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

-- An operator retries one item now (after fixing what made it fail). The triggers enqueue it.
create or replace function gk_public.retry_bin_item(kind text, ref text)
returns boolean
language plpgsql volatile
as $$
declare
  v_id uuid;
begin
  if kind = 'certificate' then
    begin
      v_id := ref::uuid;
    exception when invalid_text_representation then
      raise exception 'bin item ref % is not a certificate id', ref using errcode = '22023';
    end;
    update gk_public.certificates c set retry_requested_at = clock_timestamp()
     where c.id = v_id and c.status = 'revoking';
  elsif kind in ('blob_prefix') then
    update gk_public.purge_items p set retry_requested_at = clock_timestamp()
     where p.kind = retry_bin_item.kind and p.ref = retry_bin_item.ref and p.completed_at is null;
  else
    raise exception 'unknown bin item kind %', kind using errcode = '22023';
  end if;
  if not found then
    raise exception 'no pending bin item % %', kind, ref using errcode = 'P0002';
  end if;
  return true;
end;
$$;
comment on function gk_public.retry_bin_item is 'Retries a pending bin item now (e.g. after the CA or blob store came back).';

-- Jobs of a task that are due and waiting for a worker: while there are some, the workers are
-- behind, and re-enqueueing "overdue" items would only pile duplicates onto the queue.
create or replace function gk_private.task_backlog(task text) returns boolean
language sql stable
as $$
  select exists (
    select 1 from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = task_backlog.task
       and j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now());
$$;

-- The bin reconciler: pending items whose lease ran out (their job is gone, permanently failed,
-- or stuck on a killed worker) get a fresh job. Rows a live task holds are skipped (row lock);
-- a kind whose queue is still draining is left alone until it has drained.
create or replace function gk_private.bin_redispatch(max_items int default 10000)
returns jsonb
language plpgsql volatile
as $$
declare
  v_revoke uuid[];
  v_issue uuid[];
  v_purge bigint[];
  v_revoke_busy boolean := gk_private.task_backlog('certificates__revoke');
  v_issue_busy boolean := gk_private.task_backlog('certificates__issue');
  v_purge_busy boolean := gk_private.task_backlog('blobs__purge_prefix');
begin
  with due as (
    select c.id, c.status from gk_public.certificates c
     where ((c.status = 'revoking' and not v_revoke_busy) or (c.status = 'issuing' and not v_issue_busy))
       and c.next_attempt_at <= now()
     order by c.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.certificates c set next_attempt_at = now() + gk_private.bin_lease()
      from due where c.id = due.id
    returning c.id, c.status)
  select array_agg(id) filter (where status = 'revoking'), array_agg(id) filter (where status = 'issuing')
    into v_revoke, v_issue from bumped;

  with due as (
    select p.id from gk_public.purge_items p
     where p.completed_at is null and p.next_attempt_at <= now() and not v_purge_busy
     order by p.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.purge_items p set next_attempt_at = now() + gk_private.bin_lease()
      from due where p.id = due.id
    returning p.id)
  select array_agg(id) into v_purge from bumped;

  perform gk_private.enqueue_id_batches('certificates__revoke', coalesce(v_revoke, '{}'));
  perform gk_private.enqueue_id_batches('certificates__issue', coalesce(v_issue, '{}'), 50);
  perform gk_private.enqueue_many('blobs__purge_prefix', array(select jsonb_build_object('id', i) from unnest(v_purge) i));
  return jsonb_build_object(
    'queues_busy', (v_revoke_busy::int + v_issue_busy::int + v_purge_busy::int),
    'revocations', coalesce(cardinality(v_revoke), 0),
    'issuances', coalesce(cardinality(v_issue), 0),
    'purges', coalesce(cardinality(v_purge), 0));
end;
$$;

-- Completed purge items are history; keep them a while for operators, then prune.
create or replace function gk_private.retention_prune__purge_items(cutoff timestamptz) returns bigint
language sql volatile
as $$
  with gone as (delete from gk_public.purge_items p where p.completed_at < cutoff returning 1)
  select count(*) from gone;
$$;

comment on table gk_public.purge_items is E'@behavior -insert -update -delete\nDeletions of things that have no row any more (a deleted team''s blob prefix), with progress and last error.';
grant select on gk_public.purge_items to gk_viewer, gk_admin;
grant update (retry_requested_at) on gk_public.purge_items to gk_admin;
