-- The sweep of attachments no record holds (tasks/exports__sweep_attachments.ts,
-- src/exports/sweep-attachments.ts; columns and index: migrations/0139_exports_attachment_sweep.sql).
-- A node can keep an attachment nobody references: a create saga that unwound while its node
-- was unreachable (its undo counted the node as gone), a saga abandoned after its attach whose
-- record the coordinator gave back (exports_queued_overdue), a delete saga that skipped a silent
-- node, an attach the node finished after the controller gave up on it. The sweep lists each
-- in-service node's attachments a page at a time and detaches those these functions find
-- unreferenced, once older than its grace period.

-- In-service nodes, least recently swept first, with where each resumes.
create or replace function gk_private.export_nodes_to_sweep(max_nodes int)
returns table (id uuid, worker_id uuid, worker_name text, address text, sweep_after uuid)
language sql stable
as $$
  select n.id, n.worker_id, w.name, n.address, n.attachments_sweep_after
    from gk_public.export_nodes n left join gk_public.workers w on w.id = n.worker_id
   where n.state = 'in_service' and n.worker_id is not null
   order by n.attachments_swept_at nulls first, n.id
   limit max_nodes;
$$;

-- Of a page of ids a node listed, those no record may still use on that node. A record holds its
-- attachment from the take that placed it (written before the saga calls the node: by settling,
-- sql/720, or by exports_take_for_create_batch, committed before the attach) while it is
-- assigning — attach in flight or not answered yet —, live or deleting (its delete saga detaches
-- it). A record given back (requested) holds none, and when it is placed again its new saga's
-- id is its new attachment id, so the old one is free; a deleted record no longer holds one. An
-- attachment id is a saga's id and only that saga's take gives it to a record, guarded by the
-- generation, so an id no record holds now is never held again. One probe of
-- exports_attachment_idx per id.
create or replace function gk_private.exports_unreferenced_attachments(node_id uuid, attachment_ids uuid[])
returns uuid[]
language sql stable
as $$
  select coalesce(array_agg(a.id order by a.id), '{}')
    from unnest(attachment_ids) a(id)
   where not exists (
     select 1 from gk_public.exports e
      where e.attachment_id = a.id and e.state in ('assigning', 'live', 'deleting')
        and e.node_id = exports_unreferenced_attachments.node_id);
$$;

-- The node was swept up to `after` (its last listed id); null: a pass over all its attachments
-- is finished, and the next one starts from the first.
create or replace function gk_private.export_node_attachments_swept(node_id uuid, after uuid) returns void
language sql volatile
as $$
  update gk_public.export_nodes n
     set attachments_sweep_after = export_node_attachments_swept.after,
         attachments_swept_at = case when export_node_attachments_swept.after is null then now() else n.attachments_swept_at end
   where n.id = export_node_attachments_swept.node_id;
$$;
