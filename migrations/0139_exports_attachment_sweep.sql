-- Up Migration
-- The sweep of unreferenced attachments (tasks/exports__sweep_attachments.ts,
-- sql/740_exports_attachment_sweep.sql): every in-service node lists its attachments a page at a
-- time, and those no record may still use on that node are detached after a grace period.
-- Which listed ids a record holds on the node, per page: one probe per id of exports_node_idx,
-- which gains attachment_id for it. Without it the function's generic plan re-read the node's
-- records for every id (0.6-1.3 s a page of 1,000 on a node with 25,000 records, against 6 ms
-- with a probe); widening the index the transitions already maintain, rather than adding one,
-- keeps the saga transitions' cost (take + live measured 1.18× with a separate index, 1.07×
-- with this one: within the noise of a shared machine).
drop index gk_public.exports_node_idx;
create index exports_node_idx on gk_public.exports (node_id, attachment_id) where state <> 'deleted';
alter table gk_public.export_nodes
  add column attachments_sweep_after uuid,
  add column attachments_swept_at timestamptz;
comment on column gk_public.export_nodes.attachments_sweep_after is 'Where the sweep of unreferenced attachments resumes on this node (the last id it listed; null: from the first).';
comment on column gk_public.export_nodes.attachments_swept_at is 'When the sweep of unreferenced attachments last finished a pass over all of this node''s attachments.';

-- Down Migration
drop function if exists gk_private.exports_unreferenced_attachments(uuid, uuid[]);
drop function if exists gk_private.export_node_attachments_swept(uuid, uuid);
drop function if exists gk_private.export_nodes_to_sweep(int);
alter table gk_public.export_nodes drop column attachments_swept_at, drop column attachments_sweep_after;
drop index gk_public.exports_node_idx;
create index exports_node_idx on gk_public.exports (node_id) where state <> 'deleted';
