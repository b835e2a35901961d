-- Up Migration
-- How many times the coordinator's overdue check enqueued the queued record's saga again on its
-- own (exports_queued_overdue, sql/700_exports.sql): after a bounded number the saga is failed
-- with a clear error and the record given back, instead of being enqueued every bin_lease for
-- ever (a saga whose steps no worker knows, from another release). Reset by each new lease.
alter table gk_public.exports add column saga_requeues int not null default 0 check (saga_requeues >= 0);
comment on column gk_public.exports.saga_requeues is 'Times the queued saga was enqueued again by the coordinator''s overdue check since its lease started.';

-- Down Migration
drop function if exists gk_private.exports_queued_overdue(int, int);
alter table gk_public.exports drop column saga_requeues;
