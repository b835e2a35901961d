-- Volumes: creation (row first, then the agent), the collector's statements (orphan mark, report
-- reconciliation, missing and failed volumes), due destroys and outcomes, operator functions.
-- The collector itself is tasks/volumes__collect.ts (src/volumes/collect.ts): it runs these and
-- talks to the agents. Lock order everywhere: workers row (lease) before volumes rows.

-- Grace periods and timeouts. Tests shorten them with `alter database … set groundskeeper.… = …`.
create or replace function gk_private.volumes_setting(name text, fallback interval) returns interval
language sql stable
as $$
  select coalesce(nullif(current_setting('groundskeeper.' || name, true), '')::interval, fallback);
$$;

-- A row missing from its agent's reports this long goes (with its descendants).
create or replace function gk_private.volumes_missing_grace() returns interval
language sql stable
as $$ select gk_private.volumes_setting('volumes_missing_grace', interval '5 minutes'); $$;

-- A failed creation is kept this long for operators, then destroyed.
create or replace function gk_private.volumes_failed_grace() returns interval
language sql stable
as $$ select gk_private.volumes_setting('volumes_failed_grace', interval '1 hour'); $$;

-- A row still creating this long is checked against the agent's report: completed or failed.
create or replace function gk_private.volumes_creating_timeout() returns interval
language sql stable
as $$ select gk_private.volumes_setting('volumes_creating_timeout', interval '5 minutes'); $$;

-- How long a collector may hold a worker (volumes_worker_lease, renewed with every batch's
-- outcome) before another may take it.
create or replace function gk_private.volumes_lease() returns interval
language sql stable
as $$ select gk_private.volumes_setting('volumes_lease', interval '2 minutes'); $$;

-- The collector activates now (debounced on its crontab job key and queue).
create or replace function gk_private.volumes_activate_collector() returns void
language sql volatile
as $$
  select gk_private.reconciler_activate('volumes__collect');
$$;

-- ---------------------------------------------------------------------------------------------
-- Creation. The row is inserted first (handle chosen here), then volumes__create asks the agent,
-- so anything on an agent's disk without a row can only be garbage (adopted and destroyed).

create or replace function gk_public.create_volume(
  worker_name text,
  parent_handle uuid default null,
  container_id bigint default null,
  worker_resource_cache_id bigint default null,
  worker_base_resource_type_id bigint default null,
  worker_task_cache_id bigint default null,
  team_id uuid default null
) returns gk_public.volumes
language plpgsql volatile
as $$
declare
  v_worker gk_public.workers;
  v_parent gk_public.volumes;
  v gk_public.volumes;
begin
  select * into v_worker from gk_public.workers w where w.name = create_volume.worker_name;
  if not found then
    raise exception 'worker % not found', worker_name using errcode = 'P0002';
  end if;
  if v_worker.state <> 'running' then
    raise exception 'worker % is %: volumes are only created on running workers', v_worker.name, v_worker.state
      using errcode = '55000';
  end if;
  if num_nonnulls(container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id) = 0 then
    raise exception 'a volume needs an owner (container, worker resource cache, worker base resource type or task cache): without one it is garbage at once'
      using errcode = '22023';
  end if;
  if parent_handle is not null then
    select * into v_parent from gk_public.volumes p where p.worker_id = v_worker.id and p.handle = parent_handle;
    if not found then
      raise exception 'parent volume % not found on worker %', parent_handle, v_worker.name using errcode = 'P0002';
    end if;
    if v_parent.state <> 'created' then
      raise exception 'parent volume % is %: a copy-on-write child needs a created parent', parent_handle, v_parent.state
        using errcode = '55000';
    end if;
  end if;
  begin
    insert into gk_public.volumes (worker_id, team_id, container_id, worker_resource_cache_id, worker_base_resource_type_id,
                                   worker_task_cache_id, parent_id, parent_state)
    values (v_worker.id, create_volume.team_id, create_volume.container_id, create_volume.worker_resource_cache_id,
            create_volume.worker_base_resource_type_id, create_volume.worker_task_cache_id, v_parent.id,
            case when v_parent.id is not null then 'created' end)
    returning * into v;
  exception when foreign_key_violation then
    -- Checked above, so the parent changed state in between: the composite key decided.
    if sqlerrm like '%volumes_parent_fkey%' then
      raise exception 'parent volume % is being destroyed: a copy-on-write child needs a created parent', parent_handle
        using errcode = '55000';
    end if;
    raise;
  end;
  return v;
end;
$$;
comment on function gk_public.create_volume is 'Creates a volume on a running worker (empty, or a copy-on-write child of a created volume on the same worker) with at least one owner; the agent makes it shortly.';

create or replace function gk_private.tg_volumes__enqueue_create() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  perform gk_private.enqueue_many('volumes__create', array(
    select jsonb_build_object('ids', to_jsonb(b.ids)) from (
      select array_agg(n.id order by n.id) as ids
        from (select id, worker_id, (row_number() over (partition by worker_id order by id) - 1) / 100 as g
                from new_rows where state = 'creating') n
       group by n.worker_id, n.g) b));
  -- Adopted (unknown) handles arrive as destroying.
  if exists (select 1 from new_rows where state = 'destroying') then
    perform gk_private.volumes_activate_collector();
  end if;
  return null;
end;
$$;

drop trigger if exists _500_enqueue_create on gk_public.volumes;
create trigger _500_enqueue_create
  after insert on gk_public.volumes
  referencing new table as new_rows
  for each statement execute function gk_private.tg_volumes__enqueue_create();

-- Outcomes of volumes__create, conditional on still creating.
create or replace function gk_private.volume_created(id bigint) returns boolean
language sql volatile
as $$
  update gk_public.volumes v set state = 'created', state_changed_at = now(), last_error = null
   where v.id = volume_created.id and v.state = 'creating'
  returning true;
$$;

create or replace function gk_private.volume_create_failed(id bigint, error text) returns boolean
language sql volatile
as $$
  update gk_public.volumes v set state = 'failed', state_changed_at = now(), last_error = left(error, 2000)
   where v.id = volume_create_failed.id and v.state = 'creating'
  returning true;
$$;

-- ---------------------------------------------------------------------------------------------
-- The collector activates (debounced) when volumes lose their last owner and when a destroyed
-- child may have left its parent an orphan (retries: _100_retry_due below). Statement level: a
-- DELETE of 50,000 containers arrives here as one FK SET NULL statement and costs one enqueue.

create or replace function gk_private.volumes_ownerless(v gk_public.volumes) returns boolean
language sql immutable
as $$
  select v.container_id is null and v.worker_resource_cache_id is null
     and v.worker_base_resource_type_id is null and v.worker_task_cache_id is null;
$$;

-- Updates: a statement that sets an owner column (the FK's SET NULL when an owner goes, an
-- operator's force-destroy) activates the collector, whatever rows it touched. Column-listed and
-- without transition tables, so the collector's own statements (the mark, outcomes, reports)
-- neither fire it nor copy their rows into tuplestores. Deletes: a child that went may leave its
-- parent an orphan — except when the collector itself deletes a batch (volumes_destroyed): it
-- marks that worker again once nothing is due, so its lanes do not all enqueue on one job key.
create or replace function gk_private.tg_volumes__activate_collector() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if tg_op = 'UPDATE' then
    perform gk_private.volumes_activate_collector();
  elsif coalesce(current_setting('groundskeeper.volumes_collecting', true), '') <> 'on'
    and exists (select 1 from old_rows o where o.parent_id is not null) then
    perform gk_private.volumes_activate_collector();
  end if;
  return null;
end;
$$;

drop trigger if exists _510_activate_on_update on gk_public.volumes;
create trigger _510_activate_on_update
  after update of container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id on gk_public.volumes
  for each statement execute function gk_private.tg_volumes__activate_collector();
drop trigger if exists _510_activate_on_delete on gk_public.volumes;
create trigger _510_activate_on_delete
  after delete on gk_public.volumes
  referencing old table as old_rows
  for each statement execute function gk_private.tg_volumes__activate_collector();

-- ---------------------------------------------------------------------------------------------
-- The orphan mark: every created volume without owners and without a child, on a worker that is
-- serving, becomes destroying — one statement however many there are (volumes_ownerless_idx,
-- volumes_parent_id_idx). Rows another transaction holds (a child being inserted holds a key
-- share lock on its parent) are skipped, not waited for: they are looked at next time. A child
-- committed after this statement's snapshot makes the composite key refuse the statement: it is
-- simply run again, with a snapshot that sees the child.

-- Marks of two collectors wait for each other (a transaction-level advisory lock, held until the
-- mark's transaction commits): a collector that looked for due destroys on a worker while another
-- collector's mark of that worker was still uncommitted found nothing, skipped rows that mark held,
-- and left them to the next activation while holding the worker's lease. Now a mark starts only
-- once every mark begun before it is committed, and sees what it marked. A mark of one worker (the
-- collector's own lane, under that worker's lease) shares the lock with the marks of other workers
-- and waits only for a mark of every worker.
create or replace function gk_private.volumes_mark_orphans(worker_ids uuid[] default null) returns int
language plpgsql volatile
as $$
declare
  v_marked int;
begin
  if worker_ids is null then
    perform pg_advisory_xact_lock(hashtextextended('volumes_mark_orphans', 0));
  else
    perform pg_advisory_xact_lock_shared(hashtextextended('volumes_mark_orphans', 0));
  end if;
  for attempt in 1..5 loop
    begin
      -- Candidates are locked, then updated by their tuple id (a TID scan) rather than joined
      -- back to the table (a scan of every volume). A candidate changed by another transaction
      -- after this statement's snapshot is locked in its new version, invisible to the update, and
      -- so left for the next mark.
      with candidates as materialized (
        select v.ctid as tid
          from gk_public.volumes v
          join gk_public.workers w on w.id = v.worker_id
         where v.state = 'created'
           and v.container_id is null and v.worker_resource_cache_id is null
           and v.worker_base_resource_type_id is null and v.worker_task_cache_id is null
           and w.state = any (gk_private.workers_serving_states())
           and (worker_ids is null or v.worker_id = any (worker_ids))
           and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)
           for update of v skip locked),
      marked as (
        update gk_public.volumes v
           set state = 'destroying', state_changed_at = now(), attempts = 0, last_error = null, next_attempt_at = now()
         where v.ctid = any (array(select c.tid from candidates c))
        returning 1)
      select count(*)::int into v_marked from marked;
      return v_marked;
    exception when foreign_key_violation or restrict_violation then
      if attempt = 5 then
        raise;
      end if;
    end;
  end loop;
  return 0;
end;
$$;

-- Failed creations past their grace period are destroyed (a failed volume never has a child).
create or replace function gk_private.volumes_expire_failed() returns int
language sql volatile
as $$
  with expired as (
    update gk_public.volumes v
       set state = 'destroying', state_changed_at = now(), attempts = 0, next_attempt_at = now()
      from gk_public.workers w
     where w.id = v.worker_id and w.state = any (gk_private.workers_serving_states())
       and v.state = 'failed' and v.state_changed_at < now() - gk_private.volumes_failed_grace()
    returning 1)
  select count(*)::int from expired;
$$;

-- Rows missing from their agent past the grace period go, with all their descendants, in one
-- statement (the composite key is checked at its end, when parent and children are both gone).
create or replace function gk_private.volumes_remove_missing() returns int
language sql volatile
as $$
  with recursive missing as (
    select v.id from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
     where v.missing_since < now() - gk_private.volumes_missing_grace()
       and v.state in ('created', 'failed')
       and w.state = any (gk_private.workers_serving_states())
    union
    select c.id from gk_public.volumes c join missing m on c.parent_id = m.id),
  gone as (delete from gk_public.volumes v using missing m where v.id = m.id returning 1)
  select count(*)::int from gone;
$$;

-- Containers whose build is gone (the owner's SET NULL) go; their volumes lose that owner.
create or replace function gk_private.containers_collect() returns int
language sql volatile
as $$
  with gone as (
    delete from gk_public.containers c
     where c.build_id is null and c.created_at < now() - gk_private.volumes_setting('containers_grace', interval '1 minute')
    returning 1)
  select count(*)::int from gone;
$$;

-- The collector's database-only part, in dependency order: ownerless containers go (their
-- volumes lose that owner), failed volumes past their grace become destroying, orphans are marked,
-- volumes missing past their grace go. Each is one statement.
create or replace function gk_private.volumes_collect() returns jsonb
language plpgsql volatile
as $$
declare
  v_containers int := gk_private.containers_collect();
  v_failed int := gk_private.volumes_expire_failed();
  v_marked int := gk_private.volumes_mark_orphans();
  v_missing int := gk_private.volumes_remove_missing();
begin
  return jsonb_build_object('containers_removed', v_containers, 'failed_expired', v_failed, 'marked', v_marked,
                            'missing_removed', v_missing);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Per worker, under the collector's lease on the workers row.

-- Workers whose agents the collector talks to: serving, heartbeat current, address known.
create or replace function gk_private.volumes_collectable_workers()
returns table (id uuid, name text, address text, state text)
language sql stable
as $$
  select w.id, w.name, w.address, w.state from gk_public.workers w
   where w.state = any (gk_private.workers_serving_states()) and w.expires_at > now() and w.address is not null
   order by w.name;
$$;

-- Takes the worker for one collector; null: another collector holds it.
create or replace function gk_private.volumes_worker_lease(worker_id uuid, lease interval default null) returns boolean
language sql volatile
as $$
  update gk_public.workers w set collector_lease_until = now() + coalesce(lease, gk_private.volumes_lease())
   where w.id = volumes_worker_lease.worker_id
     and (w.collector_lease_until is null or w.collector_lease_until < now())
  returning true;
$$;

-- Extends a lease this collector holds (with every batch's outcome) once half of it has run: the
-- lanes of one worker would otherwise queue on its row's lock, one outcome at a time. A released
-- lease (null) is not taken again.
create or replace function gk_private.volumes_worker_lease_renew(worker_id uuid) returns void
language sql volatile
as $$
  update gk_public.workers w set collector_lease_until = now() + gk_private.volumes_lease()
   where w.id = volumes_worker_lease_renew.worker_id and w.collector_lease_until < now() + gk_private.volumes_lease() / 2;
$$;

create or replace function gk_private.volumes_worker_release(worker_id uuid) returns void
language sql volatile
as $$
  update gk_public.workers w set collector_lease_until = null where w.id = volumes_worker_release.worker_id;
$$;

-- The agent's report, reconciled both ways in one statement:
--  * handles on the agent without a row are adopted as destroying (they are garbage: rows come
--    before volumes);
--  * destroying rows the agent no longer has are done: deleted;
--  * creating rows the agent has are created; creating rows past the timeout that are neither
--    live nor being built there failed;
--  * created/failed rows the agent lacks are marked missing (never creating ones); reported ones
--    are no longer missing.
create or replace function gk_private.volumes_report(worker_id uuid, live uuid[], building uuid[] default '{}')
returns jsonb
language sql volatile
as $$
  -- One full join of the worker's rows with the report (a hash join on the handles as passed: no
  -- de-duplication of the whole report first, which cost a third of the statement at 100,000
  -- handles), keeping only the rows something happens to (normally a few): the steps below scan
  -- that, not every volume of the worker again. A handle reported twice joins its row twice; an
  -- UPDATE or DELETE still changes the row once, and adoption takes each unknown handle once.
  with known as materialized (
    select v.id, v.handle, v.state, v.missing_since, v.state_changed_at, r.h as reported_handle,
           r.h is not null as on_agent,
           v.handle = any (volumes_report.building) as in_progress
      from (select * from gk_public.volumes x where x.worker_id = volumes_report.worker_id) v
      full join unnest(volumes_report.live) r(h) on r.h = v.handle
     where v.id is null or r.h is null or v.state in ('destroying', 'creating') or v.missing_since is not null),
  adopted as (
    insert into gk_public.volumes (worker_id, handle, state, adopted, next_attempt_at)
    select distinct volumes_report.worker_id, k.reported_handle, 'destroying', true, now()
      from known k
     where k.id is null
    on conflict on constraint volumes_worker_handle_key do nothing
    returning 1),
  confirmed as (
    delete from gk_public.volumes v using known k
     where v.id = k.id and k.state = 'destroying' and not k.on_agent
    returning 1),
  completed as (
    update gk_public.volumes v set state = 'created', state_changed_at = now()
      from known k
     where v.id = k.id and k.state = 'creating' and k.on_agent
    returning 1),
  failed as (
    update gk_public.volumes v
       set state = 'failed', state_changed_at = now(),
           last_error = 'not on the agent ' || gk_private.volumes_creating_timeout() || ' after creation started'
      from known k
     where v.id = k.id and k.state = 'creating' and not k.on_agent and not k.in_progress
       and k.state_changed_at < now() - gk_private.volumes_creating_timeout()
    returning 1),
  missing as (
    update gk_public.volumes v set missing_since = now()
      from known k
     where v.id = k.id and k.state in ('created', 'failed') and not k.on_agent and k.missing_since is null
    returning 1),
  found as (
    update gk_public.volumes v set missing_since = null
      from known k
     where v.id = k.id and k.missing_since is not null and k.on_agent
    returning 1),
  stamp as (
    update gk_public.workers w set last_report_at = now() where w.id = volumes_report.worker_id returning 1)
  select jsonb_build_object(
    'reported', cardinality(volumes_report.live),
    'unknown', (select count(*) from adopted),
    'confirmed', (select count(*) from confirmed),
    'completed', (select count(*) from completed),
    'failed', (select count(*) from failed),
    'missing', (select count(*) from missing),
    'found', (select count(*) from found),
    'stamped', (select count(*) from stamp));
$$;

-- Due destroys of one worker, oldest due first (volumes_destroying_due_idx). Not locked: the
-- collector holds the worker's lease (volumes_worker_lease) while it sends them, so a second
-- collector skips the worker; a handle sent twice anyway (a lease that ran out) is destroyed once.
drop function if exists gk_private.volumes_claim_destroys(uuid, int);
create or replace function gk_private.volumes_due_destroys(worker_id uuid, max_items int)
returns table (id bigint, handle uuid)
language sql stable
as $$
  select v.id, v.handle from gk_public.volumes v
   where v.worker_id = volumes_due_destroys.worker_id and v.state = 'destroying' and v.next_attempt_at <= now()
   order by v.next_attempt_at
   limit max_items;
$$;

-- Outcomes look rows up by (worker_id, handle) and test "destroying" as next_attempt_at is not
-- null (the same, by CHECK volumes_destroying_due): right after a big mark the planner's
-- statistics still say few rows are destroying, and a literal state = 'destroying' made it scan
-- the worker's whole volumes_destroying_due_idx for every batch (quadratic in the backlog).

-- The agent confirmed: the rows go (conditional on still destroying; gone already is fine).
create or replace function gk_private.volumes_destroyed(worker_id uuid, handles uuid[]) returns int
language plpgsql volatile
as $$
declare
  v_gone int;
begin
  perform set_config('groundskeeper.volumes_collecting', 'on', true);
  delete from gk_public.volumes v
   where v.worker_id = volumes_destroyed.worker_id and v.handle = any (handles) and v.next_attempt_at is not null;
  get diagnostics v_gone = row_count;
  perform set_config('groundskeeper.volumes_collecting', '', true);
  return v_gone;
end;
$$;

-- The agent refused or did not answer: attempts, last error, backoff (the bin shows them).
create or replace function gk_private.volumes_destroy_failed(worker_id uuid, handles uuid[], errors text[]) returns int
language sql volatile
as $$
  with failed as (
    update gk_public.volumes v
       set attempts = v.attempts + 1,
           last_error = left(e.error, 2000),
           next_attempt_at = now() + gk_private.bin_backoff(v.attempts + 1)
      from unnest(handles, errors) as e(handle, error)
     where v.worker_id = volumes_destroy_failed.worker_id and v.handle = e.handle and v.next_attempt_at is not null
    returning 1)
  select count(*)::int from failed;
$$;

-- ---------------------------------------------------------------------------------------------
-- Operator functions (GraphQL).

create or replace function gk_public.retry_volume_destroy(handle uuid) returns gk_public.volumes
language plpgsql volatile
as $$
declare
  v gk_public.volumes;
begin
  update gk_public.volumes x set retry_requested_at = clock_timestamp()
   where x.handle = retry_volume_destroy.handle and x.state = 'destroying'
  returning * into v;
  if not found then
    raise exception 'no volume % is being destroyed', handle using errcode = 'P0002';
  end if;
  return v;
end;
$$;
comment on function gk_public.retry_volume_destroy is 'Retries destroying a volume now (after its agent or disk was fixed).';

-- A retry makes the destroy due now and activates the collector (an operator retries one
-- volume at a time; the debounced enqueue makes a bulk retry cost one add_job per row).
create or replace function gk_private.tg_volumes__retry_due() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if new.retry_requested_at is distinct from old.retry_requested_at and new.state = 'destroying' then
    new.next_attempt_at := now();
    perform gk_private.volumes_activate_collector();
  end if;
  return new;
end;
$$;

drop trigger if exists _100_retry_due on gk_public.volumes;
create trigger _100_retry_due
  before update of retry_requested_at on gk_public.volumes
  for each row execute function gk_private.tg_volumes__retry_due();

-- Force-destroy: the volume and every descendant lose their owners, so the collector destroys
-- the whole tree, leaves first. Returns how many volumes that is.
create or replace function gk_public.force_destroy_volume(handle uuid) returns int
language plpgsql volatile
as $$
declare
  v_root bigint;
  v_count int;
begin
  select v.id into v_root from gk_public.volumes v where v.handle = force_destroy_volume.handle;
  if v_root is null then
    raise exception 'volume % not found', handle using errcode = 'P0002';
  end if;
  with recursive tree as (
    select v_root as id
    union
    select c.id from gk_public.volumes c join tree t on c.parent_id = t.id),
  cut as (
    update gk_public.volumes v
       set container_id = null, worker_resource_cache_id = null, worker_base_resource_type_id = null, worker_task_cache_id = null
      from tree t where v.id = t.id
    returning 1)
  select count(*)::int into v_count from cut;
  return v_count;
end;
$$;
comment on function gk_public.force_destroy_volume is 'Destroys a volume and all its copy-on-write descendants, whatever owns them.';

-- Volumes by worker and state, for operators, `groundskeeper status` and the metrics.
create or replace view gk_public.volume_counts as
  select w.name as worker_name, v.worker_id, v.state, count(*)::int as volumes,
         count(*) filter (where v.missing_since is not null)::int as missing,
         count(*) filter (where v.last_error is not null and v.state = 'destroying')::int as failing,
         min(v.state_changed_at) as oldest_state_change_at
    from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
   group by w.name, v.worker_id, v.state;
comment on view gk_public.volume_counts is E'@primaryKey worker_id,state\nVolumes per worker and state: how many, how many missing on the agent, how many failing to be destroyed.';

comment on table gk_public.volumes is E'@behavior -insert -update -delete\nVolumes on workers. A volume without owners and children is destroyed on its agent, then its row goes.';
comment on table gk_public.containers is E'@behavior -insert -update -delete\nA container on a worker; owns the volumes mounted into it.';
comment on table gk_public.builds is E'@behavior -insert -update -delete\nA build of the platform; its containers and cache uses hang off it.';
comment on table gk_public.base_resource_types is E'@behavior -insert -update -delete\nResource types workers bring built in.';
comment on table gk_public.worker_base_resource_types is E'@behavior -insert -update -delete\nA base resource type at one version on one worker.';
comment on table gk_public.resource_configs is E'@behavior -insert -update -delete\nA resource type plus its source configuration.';
comment on table gk_public.resource_caches is E'@behavior -insert -update -delete\nOne fetched version of a resource config.';
comment on table gk_public.resource_cache_uses is E'@behavior -insert -update -delete\nA build using a resource cache: while it exists the cache cannot be deleted.';
comment on table gk_public.worker_resource_caches is E'@behavior -insert -update -delete\nA resource cache present on one worker.';
comment on table gk_public.worker_task_caches is E'@behavior -insert -update -delete\nA task''s cache directory on one worker.';
grant select on gk_public.volumes, gk_public.containers, gk_public.builds, gk_public.base_resource_types,
  gk_public.worker_base_resource_types, gk_public.resource_configs, gk_public.resource_caches,
  gk_public.resource_cache_uses, gk_public.worker_resource_caches, gk_public.worker_task_caches,
  gk_public.volume_counts to gk_viewer, gk_admin;
grant insert (worker_id, team_id, container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id,
              parent_id, parent_state) on gk_public.volumes to gk_admin;
grant update (retry_requested_at, container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id)
  on gk_public.volumes to gk_admin;
