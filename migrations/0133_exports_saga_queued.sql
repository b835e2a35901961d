-- Up Migration
-- A saga started for a record that has not taken it yet (src/exports/coordinate.ts starts them in
-- bulk; the first step takes the row). The changeset's partial indexes leave such records out,
-- so an activation reads only records that need a saga, not the backlog of those whose sagas
-- are queued (it read them all, round after round, while a big batch was being worked off).
alter table gk_public.exports add column saga_queued boolean not null default false;
comment on column gk_public.exports.saga_queued is 'A saga was started for the record and has not taken it (or given up on it) yet.';
drop index gk_public.exports_requested_idx;
create index exports_requested_idx on gk_public.exports (created_at)
  where state = 'requested' and delete_requested_at is null and not saga_queued;
drop index gk_public.exports_delete_due_idx;
create index exports_delete_due_idx on gk_public.exports (state_changed_at)
  where delete_requested_at is not null and state <> 'deleted' and not saga_queued;

-- Down Migration
drop index gk_public.exports_delete_due_idx;
create index exports_delete_due_idx on gk_public.exports (state_changed_at) where delete_requested_at is not null and state <> 'deleted';
drop index gk_public.exports_requested_idx;
create index exports_requested_idx on gk_public.exports (created_at) where state = 'requested' and delete_requested_at is null;
alter table gk_public.exports drop column saga_queued;
