-- The exports changeset in O(changes) (table gk_private.export_pending, migrations/0131). What
-- makes a resource need a new export record or its record need a deletion mark is recorded by
-- the statement that changed it, whoever issued it: an image inserted or deleted (a team delete
-- cascades here too), an export record deleted (by its delete saga, the bypass, or by hand, so
-- the resource is requested again if it still exists). The coordinator settles those entries
-- (exports_settle_pending); exports_full_sweep is the safety net for anything recorded nowhere.

-- SECURITY DEFINER: images are written by admins through GraphQL and by the platform's web
-- servers, who have no rights on gk_private.
create or replace function gk_private.tg_images__exports_pending() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into gk_private.export_pending (resource_type, resource_id) select 'image', n.id from new_rows n;
  else
    insert into gk_private.export_pending (resource_type, resource_id) select 'image', o.id from old_rows o;
  end if;
  return null;
end;
$$;

drop trigger if exists _700_exports_pending_insert on gk_public.images;
create trigger _700_exports_pending_insert
  after insert on gk_public.images
  referencing new table as new_rows
  for each statement execute function gk_private.tg_images__exports_pending();

drop trigger if exists _700_exports_pending_delete on gk_public.images;
create trigger _700_exports_pending_delete
  after delete on gk_public.images
  referencing old table as old_rows
  for each statement execute function gk_private.tg_images__exports_pending();

-- A record that became deleted (or was removed) leaves its resource without one: if the
-- resource still exists (an expunged node, an attachment the node lost), it is requested again.
-- On update a row trigger whose WHEN picks the rows that became deleted: every saga step updates
-- exports, and a statement trigger with transition tables would copy all those rows to find the
-- few that matter.
create or replace function gk_private.tg_exports__pending_when_deleted() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if tg_op = 'UPDATE' then
    insert into gk_private.export_pending (resource_type, resource_id) values (new.resource_type, new.resource_id);
  else
    insert into gk_private.export_pending (resource_type, resource_id)
    select o.resource_type, o.resource_id from old_rows o where o.state <> 'deleted';
  end if;
  return null;
end;
$$;

drop trigger if exists _700_pending_when_deleted on gk_public.exports;
create trigger _700_pending_when_deleted
  after update of state on gk_public.exports
  for each row when (new.state = 'deleted' and old.state <> 'deleted')
  execute function gk_private.tg_exports__pending_when_deleted();

drop trigger if exists _700_pending_when_removed on gk_public.exports;
create trigger _700_pending_when_removed
  after delete on gk_public.exports
  referencing old table as old_rows
  for each statement execute function gk_private.tg_exports__pending_when_deleted();

-- Settles at most max_items entries, oldest first, in one statement: a resource that exists and
-- has no non-deleted record gets a requested one — given saga_name and saga_steps (the
-- coordinator passes exports__create's), with its create saga started and queued in the same
-- statement, one job per batch_size sagas (returned in `started`); without, its saga is the
-- changeset's — the
-- records of a resource that is gone are marked for deletion. The entries go in the same
-- statement, so a failure loses none; SKIP LOCKED lets two coordinators share the queue, and an
-- entry committed meanwhile is simply settled next time. New resource types join `res` here.
drop function if exists gk_private.exports_settle_pending(int);
create or replace function gk_private.exports_settle_pending(
  max_items int, saga_name text default null, saga_steps text[] default null, batch_size int default 25)
returns table (taken int, requested int, marked int, started uuid[])
language sql volatile
as $$
  -- Every lookup here is an index probe per entry, written so that no plan can hash a whole
  -- table: LIMIT max_items is estimated at a tenth of the queue, and as joins (or EXISTS, which
  -- the planner may hash too) that chose to read every queued entry, image and record in each
  -- round of 250 — the queue's size and the images' count per round. A subquery with LIMIT stays
  -- a per-row probe; a resource has at most one non-deleted record (exports_one_per_resource).
  with taken as (
    delete from gk_private.export_pending p
     where p.id = any(array(select q.id from gk_private.export_pending q order by q.id limit max_items for update skip locked))
    returning p.resource_type, p.resource_id),
  res as (
    select d.resource_type, d.resource_id, i.present is not null as present, x.id as record_id, x.unmarked
      from (select distinct t.resource_type, t.resource_id from taken t) d
      left join lateral (select true as present from gk_public.images i
                          where d.resource_type = 'image' and i.id = d.resource_id limit 1) i on true
      left join lateral (select e.id, e.delete_requested_at is null as unmarked from gk_public.exports e
                          where e.resource_type = d.resource_type and e.resource_id = d.resource_id and e.state <> 'deleted'
                          limit 1) x on true),
  marked as (
    update gk_public.exports e set delete_requested_at = now()
     where e.id = any(array(select r.record_id from res r where not r.present and r.unmarked))
       and e.state <> 'deleted' and e.delete_requested_at is null
    returning 1),
  -- With a saga: each new record is written already queued with its create saga (one row
  -- version, not a second update by exports_sagas_started) and, when an in-service node with a
  -- fresh heartbeat exists, already taken by it and placed as its take would (assigning, this
  -- saga's lock and generation 1, round the nodes from a random one, attachment id = saga id):
  -- the saga's take then finds its record taken and writes nothing. The lease stays until the
  -- record is live or given back (exports_queued_overdue covers a saga that dies before).
  nodes as (
    select coalesce(array_agg(n.id order by n.id), '{}') as ids, floor(random() * 1024)::int as r
      from gk_public.export_nodes n where saga_name is not null and n.state = 'in_service' and n.expires_at > now()),
  fresh as (
    select r.resource_type, r.resource_id, case when saga_name is not null then gen_random_uuid() end as saga_id,
           case when saga_name is not null and cardinality(nodes.ids) > 0
                then nodes.ids[1 + (row_number() over () + nodes.r) % cardinality(nodes.ids)] end as node_id
      from res r cross join nodes
     where r.present and r.record_id is null),
  requested as (
    insert into gk_public.exports (resource_type, resource_id, saga_id, saga_queued_until,
                                   state, operating_saga_id, node_id, attachment_id, generation, attempts)
    select f.resource_type, f.resource_id, f.saga_id, case when f.saga_id is not null then now() + gk_private.bin_lease() end,
           case when f.node_id is not null then 'assigning' else 'requested' end,
           case when f.node_id is not null then f.saga_id end, f.node_id,
           case when f.node_id is not null then f.saga_id end,
           case when f.node_id is not null then 1 else 0 end, case when f.node_id is not null then 1 else 0 end
      from fresh f
    on conflict (resource_type, resource_id) where state <> 'deleted' do nothing
    returning id, saga_id, generation),
  sagas as (
    insert into gk_public.sagas (id, name, steps, params)
    select r.saga_id, saga_name, saga_steps, jsonb_build_object('export_id', r.id, 'generation', 1)
      from requested r where r.saga_id is not null
    returning id),
  batched as (
    select (row_number() over (order by id) - 1) / batch_size as b, id from sagas),
  jobs as (
    select gk_private.enqueue_many(saga_name, array(
      select jsonb_build_object('saga_ids', jsonb_agg(id)) from batched group by b)) as done
     where saga_name is not null)
  select (select count(*)::int from taken), (select count(*)::int from requested), (select count(*)::int from marked),
         (select coalesce(array_agg(r.id), '{}') from requested r, (select count(*) from jobs) j where r.saga_id is not null);
$$;

-- The safety net (every limits.full_sweep_minutes, and on the first activation): the full
-- anti-joins — images without a non-deleted record, unmarked records whose image is gone — each
-- at most max_items, recorded as pending entries (settled like any other). Returns how many it
-- recorded, or NULL when it is not due (or another coordinator is sweeping). It is done once
-- both parts come back under the limit; until then every activation goes on with it.
create or replace function gk_private.exports_full_sweep(max_items int, every interval) returns int
language plpgsql volatile
as $$
declare
  v_missing int;
  v_gone int;
begin
  perform 1 from gk_private.export_sweeps s
   where s.last_full_at is null or s.last_full_at < now() - every
     for update skip locked;
  if not found then
    return null;
  end if;
  with missing as (
    select i.id from gk_public.images i
     where not exists (select 1 from gk_public.exports e
                        where e.resource_type = 'image' and e.resource_id = i.id and e.state <> 'deleted')
       and not exists (select 1 from gk_private.export_pending p where p.resource_type = 'image' and p.resource_id = i.id)
     limit max_items),
  queued as (insert into gk_private.export_pending (resource_type, resource_id) select 'image', m.id from missing m returning 1)
  select count(*)::int into v_missing from queued;
  with gone as (
    select e.resource_id from gk_public.exports e
     where e.resource_type = 'image' and e.state <> 'deleted' and e.delete_requested_at is null
       and not exists (select 1 from gk_public.images i where i.id = e.resource_id)
       and not exists (select 1 from gk_private.export_pending p where p.resource_type = 'image' and p.resource_id = e.resource_id)
     limit max_items),
  queued as (insert into gk_private.export_pending (resource_type, resource_id) select 'image', g.resource_id from gone g returning 1)
  select count(*)::int into v_gone from queued;
  if v_missing < max_items and v_gone < max_items then
    update gk_private.export_sweeps set last_full_at = now();
  end if;
  return v_missing + v_gone;
end;
$$;
