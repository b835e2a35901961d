-- Exports (tables: migrations/0130_exports.sql): export nodes registering and heartbeating
-- through the peer gateway, the coordinator's changeset, and the guarded transitions the
-- create/delete sagas (src/exports/sagas/) make. Every transition is conditional on the state,
-- the lock (operating_saga_id) and the generation, and returns the row — or nothing when the row
-- was not where the caller thought — so a duplicate saga unwinds at its first step and a replayed
-- step is a no-op.

-- ---------------------------------------------------------------------------------------------
-- Nodes.

-- A pruned worker (its workers row deleted: worker_id SET NULL) leaves its node expunged.
create or replace function gk_private.tg_export_nodes__expunge_when_worker_gone() returns trigger
language plpgsql
as $$
begin
  if new.worker_id is null and new.state = 'in_service' then
    new.state := 'expunged';
    new.expunged_at := now();
  end if;
  return new;
end;
$$;

drop trigger if exists _100_expunge_when_worker_gone on gk_public.export_nodes;
create trigger _100_expunge_when_worker_gone
  before update of worker_id on gk_public.export_nodes
  for each row execute function gk_private.tg_export_nodes__expunge_when_worker_gone();

-- Where a node serves an attachment's bytes (src/exports/agent-role.ts, blobPath). The explicit
-- ::text keeps the body immutable (text || uuid is only stable), so the planner inlines it
-- instead of running an SQL function per row (exports_live_batch calls it for every record).
create or replace function gk_private.exports_blob_path(attachment_id uuid) returns text
language sql immutable
as $$
  select '/v1/exports/' || attachment_id::text || '/blob';
$$;

-- The agent's exports role registers when it starts: the node of its worker is created, or its
-- address refreshed. An expunged node stays expunged (expunging is permanent; enrol the machine
-- as a new worker to bring it back). Returns (id, state), nothing for an unknown worker.
create or replace function gk_private.export_node_registered(worker_id uuid, address text, agent_version text, heartbeat_ttl interval default null)
returns table (id uuid, state text)
language sql volatile
as $$
  with node as (
    insert into gk_public.export_nodes as n (worker_id, address, agent_version, heartbeat_ttl, last_heartbeat_at, expires_at)
    select w.id, export_node_registered.address, left(export_node_registered.agent_version, 100),
           coalesce(export_node_registered.heartbeat_ttl, interval '60 seconds'), now(),
           now() + coalesce(export_node_registered.heartbeat_ttl, interval '60 seconds')
      from gk_public.workers w where w.id = export_node_registered.worker_id
    on conflict (worker_id) do update
      set address = case when n.state = 'in_service' then excluded.address else n.address end,
          agent_version = excluded.agent_version,
          heartbeat_ttl = excluded.heartbeat_ttl,
          last_heartbeat_at = now(),
          expires_at = excluded.expires_at
    returning n.id, n.state, n.address),
  -- A node that came back at another address: its exports are served from there now.
  moved as (
    update gk_public.exports e set url = node.address || gk_private.exports_blob_path(e.attachment_id)
      from node
     where e.node_id = node.id and e.state in ('live', 'deleting')
       and e.url is distinct from node.address || gk_private.exports_blob_path(e.attachment_id))
  select node.id, node.state from node;
$$;

-- A heartbeat keeps the node eligible for new exports; returns its state (nothing: unknown).
create or replace function gk_private.export_node_heartbeat(worker_id uuid, attachments int)
returns text
language sql volatile
as $$
  update gk_public.export_nodes n
     set last_heartbeat_at = now(), expires_at = now() + n.heartbeat_ttl,
         attachments = coalesce(export_node_heartbeat.attachments, n.attachments)
   where n.worker_id = export_node_heartbeat.worker_id
  returning n.state;
$$;

-- Operators expunge a node (GraphQL expungeExportNode): permanent; the coordinator's next
-- activation (started now) deletes its exports and re-creates them on in-service nodes.
create or replace function gk_public.expunge_export_node(id uuid)
returns gk_public.export_nodes
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v gk_public.export_nodes;
begin
  update gk_public.export_nodes n set state = 'expunged', expunged_at = now()
   where n.id = expunge_export_node.id and n.state = 'in_service'
  returning * into v;
  if not found then
    select * into v from gk_public.export_nodes n where n.id = expunge_export_node.id;
    if not found then
      raise exception 'export node % not found', id using errcode = 'P0002';
    end if;
    return v;
  end if;
  perform gk_private.reconciler_activate('exports__coordinate');
  return v;
end;
$$;
comment on function gk_public.expunge_export_node is 'Expunges an export node (permanent): its exports are deleted and re-created on in-service nodes by the coordinator, which runs now.';

-- ---------------------------------------------------------------------------------------------
-- Records. One non-deleted record per resource (exports_one_per_resource); this says so clearly
-- before the index does.

create or replace function gk_private.exports_resource_exists(resource_type gk_public.export_resource_type, resource_id uuid)
returns boolean
language sql stable
as $$
  select case exports_resource_exists.resource_type
           when 'image' then exists (select 1 from gk_public.images i where i.id = exports_resource_exists.resource_id)
         end;
$$;

-- An operator asks for a resource's export now instead of at the coordinator's next tick.
create or replace function gk_public.request_export(resource_type gk_public.export_resource_type, resource_id uuid)
returns gk_public.exports
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v gk_public.exports;
begin
  if not gk_private.exports_resource_exists(resource_type, resource_id) then
    raise exception '% % not found', resource_type, resource_id using errcode = 'P0002';
  end if;
  select * into v from gk_public.exports e
   where e.resource_type = request_export.resource_type and e.resource_id = request_export.resource_id and e.state <> 'deleted';
  if found then
    raise exception '% % already has export % (%)', resource_type, resource_id, v.id, v.state
      using errcode = '23505', constraint = 'exports_one_per_resource';
  end if;
  insert into gk_public.exports (resource_type, resource_id) values (resource_type, resource_id) returning * into v;
  perform gk_private.reconciler_activate('exports__coordinate');
  return v;
end;
$$;
comment on function gk_public.request_export is 'Requests the export of a resource now (the coordinator also does this for every resource on its own). Refused when the resource already has one.';

-- ---------------------------------------------------------------------------------------------
-- The coordinator (tasks/exports__coordinate.ts).

-- Records on expunged nodes must go (records of deleted resources are marked by
-- exports_settle_pending, sql/720). Only rows not marked yet are counted, so the count is this
-- activation's, not a running total; exports_node_idx holds only non-deleted records, so this
-- reads the expunged nodes' unfinished records, not their history.
drop function if exists gk_private.exports_request(gk_public.export_resource_type, uuid[]);
create or replace function gk_private.exports_mark_for_deletion() returns int
language sql volatile
as $$
  with marked as (
    update gk_public.exports e set delete_requested_at = now()
      from gk_public.export_nodes n
     where n.state = 'expunged' and e.node_id = n.id and e.state <> 'deleted' and e.delete_requested_at is null
    returning 1)
  select count(*)::int from marked;
$$;

-- Requested records that must go were never attached: straight to deleted, no saga.
create or replace function gk_private.exports_bypass(max_items int) returns uuid[]
language sql volatile
as $$
  with gone as (
    update gk_public.exports e set state = 'deleted', deleted_at = now(), state_changed_at = now()
     where e.id in (select d.id from gk_public.exports d
                     where d.delete_requested_at is not null and d.state = 'requested'
                     order by d.state_changed_at limit max_items)
       and e.state = 'requested'
    returning e.id)
  select coalesce(array_agg(id), '{}') from gone;
$$;

-- The changeset, at most max_items of each: requested records without a running saga (create),
-- live records marked for deletion without a running saga (delete). Resources without a record
-- got one from exports_settle_pending (sql/720) before this runs. Deleted records are never part
-- of it; both parts read only their partial index (O(changes), not O(resources)), which leaves
-- out records whose saga is queued (saga_queued_until, set when their sagas start; one whose lease
-- ran out is looked at by exports_queued_overdue).
create or replace function gk_private.exports_changeset(max_items int)
returns table (action text, export_id uuid, resource_type gk_public.export_resource_type, resource_id uuid, generation bigint)
language sql stable
as $$
  (select 'create', e.id, e.resource_type, e.resource_id, e.generation
     from gk_public.exports e
    where e.state = 'requested' and e.delete_requested_at is null and e.saga_queued_until is null
      and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
    order by e.created_at limit max_items)
  union all
  (select 'delete', e.id, e.resource_type, e.resource_id, e.generation
     from gk_public.exports e
    where e.delete_requested_at is not null and e.state = 'live' and e.saga_queued_until is null
      and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
    order by e.state_changed_at limit max_items);
$$;

-- The coordinator started these sagas for these records: it starts no other while they run.
create or replace function gk_private.exports_sagas_started(export_ids uuid[], saga_ids uuid[]) returns void
language sql volatile
as $$
  update gk_public.exports e set saga_id = x.saga_id, saga_queued_until = now() + gk_private.bin_lease(), saga_requeues = 0
    from unnest(export_ids, saga_ids) x(export_id, saga_id)
   where e.id = x.export_id;
$$;

-- Queued records whose lease ran out (their saga has not taken them within bin_lease, or — a
-- record settling wrote already taken — has not made it live), at most max_items, oldest first,
-- read through exports_queued_until_idx:
-- - saga finished or gone (failed, abandoned, deleted by retention) without giving the record
--   back: the mark is cleared, and a record still held by that saga goes back to requested,
--   unplaced, so the changeset (run next) starts a fresh saga;
-- - saga unfinished and no job of its task waiting for a worker (its batch job was lost, failed
--   for good, or sits locked by a dead worker): its job is enqueued again on its own
--   (saga:<id>; a runner still holding it keeps its advisory lock) and the lease renewed — at
--   most max_requeues times per lease: a saga still not driven after that (no worker knows its
--   steps: a saga of another release) is failed with an error saying so and its record given
--   back as above, so the changeset starts one this release's workers drive;
-- - saga unfinished while workers are behind (its job most likely waits in the queue): the
--   lease is renewed only, so a backlog does not pile duplicate jobs onto the queue.
-- Returns how many were given back, how many sagas re-enqueued, and the sagas failed.
drop function if exists gk_private.exports_queued_overdue(int);
create or replace function gk_private.exports_queued_overdue(max_items int, max_requeues int default 5,
  out released int, out requeued int, out failed uuid[])
language sql volatile
as $$
  with due as (
    select e.id, s.id as saga_id, s.name, (s.id is not null and s.finished_at is null) as running, e.saga_requeues
      from gk_public.exports e left join gk_public.sagas s on s.id = coalesce(e.operating_saga_id, e.saga_id)
     where e.saga_queued_until < now()
     order by e.saga_queued_until limit max_items
       for update of e skip locked),
  backlog as (
    select n.name, gk_private.task_backlog(n.name) as busy from (select distinct name from due where running) n),
  act as (
    select d.id, d.saga_id, d.name,
           case when not d.running then 'release'
                when b.busy then 'renew'
                when d.saga_requeues >= max_requeues then 'fail'
                else 'requeue' end as what
      from due d left join backlog b on b.name = d.name),
  gave_up as (
    update gk_public.sagas s
       set state = 'failed', failed_step = s.steps[s.step + 1], finished_at = now(), updated_at = now(),
           error = format('not driven after %s re-enqueues over %s each: no worker knows its steps (%s) — a saga of another release?; its record was given back',
                          max_requeues, gk_private.bin_lease(), array_to_string(s.steps, ', '))
      from act a
     where a.what = 'fail' and s.id = a.saga_id and s.finished_at is null
    returning s.id),
  moved as (
    update gk_public.exports e
       set saga_queued_until = case when a.what in ('renew', 'requeue') then now() + gk_private.bin_lease() end,
           saga_requeues = e.saga_requeues + case when a.what = 'requeue' then 1 else 0 end,
           state = case when a.what in ('release', 'fail') and e.state = 'assigning' then 'requested' else e.state end,
           operating_saga_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.operating_saga_id end,
           node_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.node_id end,
           attachment_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.attachment_id end,
           url = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.url end,
           state_changed_at = case when a.what in ('release', 'fail') and e.state = 'assigning' then now() else e.state_changed_at end
      from act a
     where e.id = a.id
    returning e.id, a.what),
  enqueued as (
    select gk_private.saga_enqueue(a.saga_id, a.name) from act a where a.what = 'requeue')
  select (select count(*) from moved where what in ('release', 'fail'))::int, (select count(*) from enqueued)::int,
         (select coalesce(array_agg(id), '{}') from gave_up);
$$;

-- ---------------------------------------------------------------------------------------------
-- The create saga (src/exports/sagas/create.ts).

-- The saga steps' transitions take arrays (ids, saga_ids, generations: one entry per saga), so
-- a job driving a batch of sagas (src/worker/saga.ts, runSagas) moves them all in one statement.
drop function if exists gk_private.exports_take_for_create(uuid, uuid, bigint);
drop function if exists gk_private.exports_place(uuid, uuid);
drop function if exists gk_private.exports_place_batch(uuid[], uuid[]);
drop function if exists gk_private.exports_live(uuid, uuid);
drop function if exists gk_private.exports_take_for_delete(uuid, uuid, bigint);
drop function if exists gk_private.exports_deleted(uuid, uuid);

-- take: requested → assigning for this saga and generation, placed on an in-service node with a
-- fresh heartbeat, the attachment handle being the saga's id — one statement for take and
-- placement. A batch goes round the nodes from a random one, so load spreads evenly. The same
-- call again returns the same row and node. One row per input: export_id NULL when the record
-- was not taken (another saga has it, or `nodes` = 0: no node to place it on, nothing changed).
drop function if exists gk_private.exports_take_for_create_batch(uuid[], uuid[], bigint[]);
create or replace function gk_private.exports_take_for_create_batch(ids uuid[], saga_ids uuid[], generations bigint[])
returns table (id uuid, export_id uuid, resource_type gk_public.export_resource_type, resource_id uuid,
               node_id uuid, worker_id uuid, address text, attachment_id uuid, nodes int)
language sql volatile
-- A batch job's 25 rows (src/exports/sagas/create.ts joins images to them): estimated at the
-- default 1,000, that join hashed every image for each batch of 25.
rows 25
as $$
  with x as (select * from unnest(ids, saga_ids, generations) with ordinality x(id, saga_id, generation, o)),
  nodes as (
    select coalesce(array_agg(n.id order by n.id), '{}') as ids, floor(random() * 1024)::int as r
      from gk_public.export_nodes n where n.state = 'in_service' and n.expires_at > now()),
  taken as (
    update gk_public.exports e
       set state = 'assigning', operating_saga_id = x.saga_id, saga_id = x.saga_id,
           generation = x.generation, attempts = e.attempts + 1, state_changed_at = now(), saga_queued_until = null,
           node_id = nodes.ids[1 + (x.o::int + nodes.r) % cardinality(nodes.ids)], attachment_id = x.saga_id
      from x, nodes
     where e.id = x.id and e.state = 'requested' and e.operating_saga_id is null
       and e.delete_requested_at is null and e.generation < x.generation and cardinality(nodes.ids) > 0
    returning e.id, e.resource_type, e.resource_id, e.node_id, e.attachment_id),
  mine as (
    select * from taken
    union all
    select e.id, e.resource_type, e.resource_id, e.node_id, e.attachment_id from gk_public.exports e join x on e.id = x.id
     where e.operating_saga_id = x.saga_id and e.state = 'assigning' and e.generation = x.generation and e.node_id is not null)
  select x.id, m.id, m.resource_type, m.resource_id, m.node_id, n.worker_id, n.address, m.attachment_id, cardinality(nodes.ids)
    from x cross join nodes left join mine m on m.id = x.id left join gk_public.export_nodes n on n.id = m.node_id
   order by x.o;
$$;

-- Undo of take: assigning (this saga) → requested, unplaced. A row another saga holds is left alone.
create or replace function gk_private.exports_release_create(id uuid, saga_id uuid) returns void
language sql volatile
as $$
  update gk_public.exports e
     set state = 'requested', operating_saga_id = null, node_id = null, attachment_id = null, url = null, state_changed_at = now()
   where e.id = exports_release_create.id and e.operating_saga_id = exports_release_create.saga_id and e.state = 'assigning';
  -- A saga that never took the record (another had it, no node) gives it back to the changeset.
  update gk_public.exports e set saga_queued_until = null
   where e.id = exports_release_create.id and e.saga_id = exports_release_create.saga_id and e.saga_queued_until is not null;
$$;

-- live: assigning (this saga) → live, served at the node's current address; the lock is
-- released, and so is the lease of a record settling wrote already taken. A replay returns the row.
drop function if exists gk_private.exports_live(uuid, uuid, text);
create or replace function gk_private.exports_live_batch(ids uuid[], saga_ids uuid[])
returns setof gk_public.exports
language sql volatile
as $$
  with x as (select * from unnest(ids, saga_ids) x(id, saga_id)),
  moved as (
    update gk_public.exports e
       set state = 'live', operating_saga_id = null, url = n.address || gk_private.exports_blob_path(e.attachment_id),
           attempts = 0, live_at = now(), state_changed_at = now(), saga_queued_until = null
      from x, gk_public.export_nodes n
     where e.id = x.id and e.operating_saga_id = x.saga_id and e.state = 'assigning'
       and n.id = e.node_id and e.attachment_id = x.saga_id
    returning e.*)
  select * from moved
  union all
  select e.* from gk_public.exports e join x on e.id = x.id where e.state = 'live' and e.attachment_id = x.saga_id;
$$;

-- Undo of live (only when a failure is injected after it): back to assigning, if still this
-- saga's generation.
create or replace function gk_private.exports_unlive(id uuid, saga_id uuid, generation bigint) returns void
language sql volatile
as $$
  update gk_public.exports e set state = 'assigning', operating_saga_id = exports_unlive.saga_id, url = null, live_at = null, state_changed_at = now()
   where e.id = exports_unlive.id and e.state = 'live' and e.attachment_id = exports_unlive.saga_id
     and e.generation = exports_unlive.generation;
$$;

-- ---------------------------------------------------------------------------------------------
-- The delete saga (src/exports/sagas/delete.ts).

-- take: live and marked → deleting for this saga and generation; returns the row with its node.
create or replace function gk_private.exports_take_for_delete_batch(ids uuid[], saga_ids uuid[], generations bigint[])
returns setof gk_public.exports
language sql volatile
as $$
  with x as (select * from unnest(ids, saga_ids, generations) x(id, saga_id, generation)),
  taken as (
    update gk_public.exports e
       set state = 'deleting', operating_saga_id = x.saga_id, saga_id = x.saga_id,
           generation = x.generation, attempts = e.attempts + 1, state_changed_at = now(), saga_queued_until = null
      from x
     where e.id = x.id and e.state = 'live' and e.operating_saga_id is null
       and e.delete_requested_at is not null and e.generation < x.generation
    returning e.*)
  select * from taken
  union all
  select e.* from gk_public.exports e join x on e.id = x.id
   where e.operating_saga_id = x.saga_id and e.state = 'deleting' and e.generation = x.generation;
$$;

-- Undo of take: deleting (this saga) → live.
create or replace function gk_private.exports_release_delete(id uuid, saga_id uuid) returns void
language sql volatile
as $$
  update gk_public.exports e set state = 'live', operating_saga_id = null, state_changed_at = now()
   where e.id = exports_release_delete.id and e.operating_saga_id = exports_release_delete.saga_id and e.state = 'deleting';
  update gk_public.exports e set saga_queued_until = null
   where e.id = exports_release_delete.id and e.saga_id = exports_release_delete.saga_id and e.saga_queued_until is not null;
$$;

-- deleted, last (once deleted nothing would start the delete again): deleting (this saga) →
-- deleted. A replay returns the row.
create or replace function gk_private.exports_deleted_batch(ids uuid[], saga_ids uuid[])
returns setof gk_public.exports
language sql volatile
as $$
  with x as (select * from unnest(ids, saga_ids) x(id, saga_id)),
  moved as (
    update gk_public.exports e set state = 'deleted', operating_saga_id = null, deleted_at = now(), state_changed_at = now()
      from x
     where e.id = x.id and e.operating_saga_id = x.saga_id and e.state = 'deleting'
    returning e.*)
  select * from moved
  union all
  select e.* from gk_public.exports e join x on e.id = x.id where e.state = 'deleted' and e.saga_id = x.saga_id;
$$;

-- Undo of deleted (only when a failure is injected after it): back to deleting.
create or replace function gk_private.exports_undelete(id uuid, saga_id uuid, generation bigint) returns void
language sql volatile
as $$
  update gk_public.exports e set state = 'deleting', operating_saga_id = exports_undelete.saga_id, deleted_at = null, state_changed_at = now()
   where e.id = exports_undelete.id and e.state = 'deleted' and e.saga_id = exports_undelete.saga_id
     and e.generation = exports_undelete.generation;
$$;

-- What a node is, for the sagas: its state and whether its heartbeat is fresh.
create or replace function gk_private.export_node(id uuid)
returns table (id uuid, worker_id uuid, address text, state text, fresh boolean)
language sql stable
as $$
  select n.id, n.worker_id, n.address, n.state, n.expires_at > now() from gk_public.export_nodes n where n.id = export_node.id;
$$;

-- ---------------------------------------------------------------------------------------------
-- Operator views (status, metrics).

create or replace view gk_public.export_counts as
  select e.state, (e.delete_requested_at is not null) as doomed, count(*)::int as exports
    from gk_public.exports e
   where e.state <> 'deleted'
   group by 1, 2;
comment on view gk_public.export_counts is 'Export records that are not deleted, by state and whether they are marked for deletion.';

create or replace view gk_public.export_node_load as
  select n.id, w.name as worker_name, n.address, n.state, n.last_heartbeat_at, n.expires_at > now() as fresh, n.attachments,
         (select count(*)::int from gk_public.exports e where e.node_id = n.id and e.state = 'live') as live_exports
    from gk_public.export_nodes n left join gk_public.workers w on w.id = n.worker_id;
comment on view gk_public.export_node_load is 'Export nodes with their live export count and heartbeat freshness.';

comment on table gk_public.export_nodes is E'@behavior -insert -update -delete\nExport nodes: agents that serve read-only resources (images) over their authenticated HTTPS server. Expunge one with expungeExportNode.';
comment on table gk_public.exports is E'@behavior -insert -update -delete\nExport records: which node serves which read-only resource, and the state of getting it there. Deleted records are kept.';
grant select on gk_public.export_nodes, gk_public.exports, gk_public.export_counts, gk_public.export_node_load to gk_viewer, gk_admin;

-- ---------------------------------------------------------------------------------------------
-- Verification: a node that restarted without its storage answers 404 for attachments it lost.
-- The coordinator asks about a few live records each activation (least recently verified first)
-- and marks the lost ones for deletion, so they are re-created.

create or replace function gk_private.exports_to_verify(max_items int)
returns table (export_id uuid, node_id uuid, worker_id uuid, address text, attachment_id uuid)
language sql stable
as $$
  select e.id, n.id, n.worker_id, n.address, e.attachment_id
    from (select * from gk_public.exports x
           where x.state = 'live' and x.delete_requested_at is null
           order by x.verified_at nulls first limit max_items) e
    join gk_public.export_nodes n on n.id = e.node_id
   where n.state = 'in_service' and n.expires_at > now();
$$;

-- Whether this activation verifies, and if so the time is recorded: always when `always` (an
-- activation that finished the backlog), else only when the last verify is older than `every`
-- (one cut short by max_items: a backlog that never ends cannot starve verify). Never verified
-- yet (a fresh install), a cut-short activation only starts that clock: the first activation of
-- the first launch would otherwise ask the nodes behind the attaches it has just queued (their
-- client's sockets are shared), and the next activation waited seconds for it. One row
-- (export_sweeps), locked first, so two coordinators at once claim it once.
create or replace function gk_private.exports_verify_claim(every interval, always boolean) returns boolean
language sql volatile
as $$
  with prev as (select s.last_verify_at as at from gk_private.export_sweeps s for update),
  claimed as (
    update gk_private.export_sweeps s set last_verify_at = now()
      from prev p
     where always or p.at is null or p.at < now() - every
    returning p.at)
  select exists (select 1 from claimed c where always or c.at is not null);
$$;

-- Records the answers; returns how many lost records were newly marked.
create or replace function gk_private.exports_verified(present uuid[], lost uuid[]) returns int
language sql volatile
as $$
  update gk_public.exports e set verified_at = now() where e.id = any(present) and e.state = 'live';
  with marked as (
    update gk_public.exports e set delete_requested_at = now()
     where e.id = any(lost) and e.state = 'live' and e.delete_requested_at is null
    returning 1)
  select count(*)::int from marked;
$$;
