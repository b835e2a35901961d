-- Up Migration
-- The safety net (gk_private.exports_full_sweep, sql/720_exports_pending.sql) leaves out
-- resources that already have a pending entry: during a launch every new image has one, and
-- recording it again only made the coordinator settle it twice.
create index export_pending_resource_idx on gk_private.export_pending (resource_type, resource_id);

-- Down Migration
drop index gk_private.export_pending_resource_idx;
