-- Up Migration
-- The exports changeset in O(changes): triggers (sql/720_exports_pending.sql) record every
-- resource whose export may need attention — an image inserted or deleted, an export record
-- deleted — and the coordinator (src/exports/coordinate.ts) settles only those, instead of an
-- anti-join over every image. The full anti-join stays as a periodic safety net
-- (gk_private.exports_full_sweep), which records what it finds here too.
create table gk_private.export_pending (
  id bigint generated always as identity primary key,
  resource_type gk_public.export_resource_type not null,
  -- No foreign key: an entry is as often about a resource that was just deleted.
  resource_id uuid not null,
  queued_at timestamptz not null default now()
);
comment on table gk_private.export_pending is 'Resources whose export may need a record or a deletion mark; consumed oldest first by the export coordinator.';

-- When the safety net last went over every resource; NULL: never (the next activation does).
create table gk_private.export_sweeps (
  singleton boolean primary key default true check (singleton),
  last_full_at timestamptz
);
insert into gk_private.export_sweeps default values;

-- Down Migration
drop trigger if exists _700_exports_pending_insert on gk_public.images;
drop trigger if exists _700_exports_pending_delete on gk_public.images;
drop trigger if exists _700_pending_when_deleted on gk_public.exports;
drop trigger if exists _700_pending_when_removed on gk_public.exports;
drop function if exists gk_private.tg_images__exports_pending() cascade;
drop function if exists gk_private.tg_exports__pending_when_deleted() cascade;
drop table gk_private.export_sweeps;
drop table gk_private.export_pending;
