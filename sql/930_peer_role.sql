-- What gk_peer (migration 0095_peer_role.sql) may do: the connections of the mutual-TLS listeners
-- (src/peers/gateway.ts, src/peers/robot-api.ts) run as it. It is no member of gk_viewer: it
-- reaches only the entry points and columns below. The recorders the routes call are made
-- SECURITY DEFINER here (ALTER FUNCTION, so the areas' files stay as they are; this file is
-- re-applied after each of them, src/db/migrate.ts applyStoredLogic); their bodies name every
-- table with its schema, so the fixed search_path holds. PUBLIC loses EXECUTE on them in
-- sql/990_definer_execute.sql, so each is granted to gk_peer by name.

grant usage on schema gk_public, gk_private to gk_peer;

do $$
declare
  f regprocedure;
begin
  foreach f in array array[
    -- Who a presented certificate is: every request of both listeners asks.
    'gk_private.certificate_peer(text)',
    'gk_private.robot_certificate_identity(text)',
    -- Peer gateway: agents of volumes (src/volumes/gateway-routes.ts) and exports
    -- (src/exports/gateway-routes.ts) register and heartbeat.
    'gk_private.worker_registered(uuid, text, text, interval)',
    'gk_private.worker_heartbeat(uuid, int, int)',
    'gk_private.export_node_registered(uuid, text, text, interval)',
    'gk_private.export_node_heartbeat(uuid, int)',
    -- Robot API, robots (src/robots/robot-routes.ts, manifest.ts, certificate.ts): a manifest and
    -- its ECUs' registered keys (to verify it), the current certificate, its replacement.
    'gk_private.robot_manifest_received(uuid, uuid, boolean, jsonb)',
    'gk_private.robot_ecu_keys(uuid)',
    'gk_private.robot_current_certificate(uuid)',
    'gk_private.robots_certificate_replacements(uuid[], text[])'
  ]::regprocedure[] loop
    execute format('alter function %s security definer set search_path = pg_catalog, pg_temp', f);
    execute format('grant execute on function %s to gk_peer', f);
  end loop;
end $$;

-- Robot API, robots: the robot's row lock before a replacement (SELECT … FOR UPDATE needs an
-- UPDATE privilege; certificate_dirty_since, which the replacement function clears anyway), the
-- wait for the replacement, and its download (gk_public.download_certificate, an invoker function
-- GraphQL calls too, reads the row and records downloaded_at or fetch_requested_at).
grant execute on function gk_public.download_certificate(uuid) to gk_peer;
grant select (id, certificate_generation, certificate_dirty_since), update (certificate_dirty_since) on gk_public.robots to gk_peer;
grant select, update (downloaded_at, fetch_requested_at) on gk_public.certificates to gk_peer;

-- Robot API, rollouts (src/rollouts/director-api.ts, regenerate.ts, director-keys.ts): a robot's
-- director metadata, served as stored or regenerated under its row lock (director_prepare and
-- director_store are SECURITY DEFINER in sql/600_rollouts_director.sql), the team's director made
-- on first use (its keys sealed in Node under the master key), the online key read back sealed
-- and opened in Node to sign; ECU events (rollouts_record_event, sql/800_rollouts.sql).
grant execute on function gk_private.director_prepare(uuid[], boolean), gk_private.director_read(uuid, uuid),
      gk_private.director_store(uuid[], bigint[], uuid[], int[], int[], timestamptz[], text[], text[], text[]),
      gk_private.rollouts_record_event(uuid, uuid, text, text, text) to gk_peer;
grant select (team_id), insert (team_id, root_expires, root_key_id, online_key_id) on gk_public.director_repositories to gk_peer;
grant select (team_id, version, document), insert (team_id, version, expires, document) on gk_public.director_roots to gk_peer;
grant select (team_id, key_id, role, sealed_private_key), insert (team_id, key_id, role, sealed_private_key) on gk_private.director_keys to gk_peer;
grant select (robot_id, team_id, root_version, dirty, expires) on gk_public.robot_directors to gk_peer;
grant select (robot_id, targets, snapshot, timestamp) on gk_public.robot_director_documents to gk_peer;
-- The clean read checks that the robot has no pending rollout row (which makes it dirty).
grant select (robot_id, state) on gk_public.rollout_robots to gk_peer;

-- The listeners' built-in CA (src/cli/parts.ts): the CRL's part of the local CA, granted with
-- gk_api's in sql/920_api_role.sql.
