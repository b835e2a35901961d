-- Up Migration
-- The sweep of unreferenced attachments (tasks/exports__sweep_attachments.ts,
-- sql/740_exports_attachment_sweep.sql): every in-service node lists its attachments a page at a
-- time, and those no record may still use on that node are detached after a grace period.
-- Which listed ids a record holds, per page: one probe per id of an index over only the records
-- that hold an attachment (assigning, live, deleting; a requested record holds none, a deleted one
-- no longer). Without it the function's generic plan re-read the node's records for every id:
-- 0.6-1.3 s a page of 1,000 on a node with 25,000 records, against 6 ms with it. A separate index
-- rather than exports_node_idx widened to (node_id, attachment_id): with the wider index an
-- activation's settle + mark + changeset over 100,000 images took 83-107 ms against 40-64 ms
-- (bench/exports.ts, alternated runs).
-- Where the node's next page starts (its last listed id; null: from the first), so a node with
-- more attachments than one activation sweeps is resumed where it stopped, and when its last
-- complete pass ended.
create index exports_attachment_idx on gk_public.exports (attachment_id) where state in ('assigning', 'live', 'deleting');
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
drop index gk_public.exports_attachment_idx;
