-- Up Migration
-- The queued mark becomes a lease: a create/delete saga started for a record that has not taken
-- it yet holds it until saga_queued_until. A saga that dies before its take (its batch job lost
-- or permanently failed, its row finished without giving the record back) must not strand the
-- record: the coordinator looks at records whose lease ran out (exports_queued_overdue in
-- sql/700_exports.sql) through exports_queued_until_idx. Partial-index predicates cannot use
-- now(), so the changeset's indexes keep leaving out every queued record and the lease has its
-- own index on the timestamp.
alter table gk_public.exports add column saga_queued_until timestamptz;
comment on column gk_public.exports.saga_queued_until is 'A saga was started for the record and has not taken it (or given it back) yet; after this the coordinator checks on that saga.';
-- Queued records of the previous release are checked on the first activation.
update gk_public.exports set saga_queued_until = now() where saga_queued;
drop index gk_public.exports_requested_idx;
create index exports_requested_idx on gk_public.exports (created_at)
  where state = 'requested' and delete_requested_at is null and saga_queued_until is null;
drop index gk_public.exports_delete_due_idx;
create index exports_delete_due_idx on gk_public.exports (state_changed_at)
  where delete_requested_at is not null and state <> 'deleted' and saga_queued_until is null;
create index exports_queued_until_idx on gk_public.exports (saga_queued_until) where saga_queued_until is not null;
alter table gk_public.exports drop column saga_queued;

-- Down Migration
alter table gk_public.exports add column saga_queued boolean not null default false;
comment on column gk_public.exports.saga_queued is 'A saga was started for the record and has not taken it (or given up on it) yet.';
update gk_public.exports set saga_queued = true where saga_queued_until is not null;
drop index gk_public.exports_queued_until_idx;
drop index gk_public.exports_delete_due_idx;
create index exports_delete_due_idx on gk_public.exports (state_changed_at)
  where delete_requested_at is not null and state <> 'deleted' and not saga_queued;
drop index gk_public.exports_requested_idx;
create index exports_requested_idx on gk_public.exports (created_at)
  where state = 'requested' and delete_requested_at is null and not saga_queued;
-- The export bin view (sql/710) reads the lease; it and the bin view over it are re-created
-- from sql/ after migrating.
drop view if exists gk_private.bin__export cascade;
alter table gk_public.exports drop column saga_queued_until;
