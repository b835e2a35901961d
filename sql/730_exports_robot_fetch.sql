-- Where a robot fetches an image of its own team (the robot API's GET /robot/v1/images/<id>/export,
-- src/exports/robot-routes.ts): the image's digest and, when it has a live export not marked for
-- deletion on an in-service node, that export's URL, attachment and node (whose worker id is the
-- audience of the capability the route signs), and whether that node's heartbeat is fresh
-- (node_fresh: expires_at ahead). A stale node is never handed to a robot: the route answers 503
-- + Retry-After, since there is one non-deleted export per resource and the coordinator re-homes
-- it once the node is expunged. No row: no such image in that team — another team's image is
-- indistinguishable from none. Made SECURITY DEFINER for gk_peer in sql/930_peer_role.sql.
-- Index-backed: images by primary key, exports by exports_one_per_resource, nodes by primary key.
-- Dropped first: its result columns changed (node_fresh), which create or replace cannot do.
drop function if exists gk_private.export_robot_fetch(uuid, uuid);
create function gk_private.export_robot_fetch(team_id uuid, image_id uuid)
returns table (image_id uuid, sha256 text, length bigint, attachment_id uuid, url text, node_worker_id uuid, node_fresh boolean)
language sql stable
as $$
  select i.id, i.sha256, i.length, n.attachment_id, n.url, n.worker_id, n.fresh
    from gk_public.images i
    left join lateral (
      select e.attachment_id, e.url, x.worker_id, x.expires_at > now() as fresh
        from gk_public.exports e
        join gk_public.export_nodes x on x.id = e.node_id and x.state = 'in_service'
       where e.resource_type = 'image' and e.resource_id = i.id
         and e.state = 'live' and e.delete_requested_at is null
       limit 1
    ) n on true
   where i.id = export_robot_fetch.image_id and i.team_id = export_robot_fetch.team_id;
$$;
