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
grant execute on function gk_private.director_prepare(uuid[], boolean),
      gk_private.director_store(uuid[], bigint[], int[], int[], timestamptz[], text[], text[], text[]),
      gk_private.rollouts_record_event(uuid, uuid, text, text, text) to gk_peer;
grant select (team_id), insert (team_id, root_expires, root_key_id, online_key_id) on gk_public.director_repositories to gk_peer;
grant select (team_id, version, document), insert (team_id, version, expires, document) on gk_public.director_roots to gk_peer;
-- The director's keys: gk_peer inserts a new team's (sealed in Node) but reads none directly: a
-- robot's online key only through director_robot_online_key below. An older release granted it
-- SELECT on the table; the table-level REVOKE takes the column grants with it.
revoke select on gk_private.director_keys from gk_peer;
grant insert (team_id, key_id, role, sealed_private_key) on gk_private.director_keys to gk_peer;
grant select (robot_id, team_id, root_version, dirty, expires) on gk_public.robot_directors to gk_peer;
grant select (robot_id, targets, snapshot, timestamp) on gk_public.robot_director_documents to gk_peer;

-- The sealed director online key `key_id` of the team of the robot whose certificate the robot
-- API verified in the TLS handshake (src/peers/robot-api.ts authenticateRobot: its serial and its
-- DER bytes): the certificate must be that robot's, issued, unexpired, of its current team, as
-- robot_certificate_identity requires, and byte for byte the one stored (a serial alone, which
-- gk_peer can read, names a certificate but is not one). No row: not that robot's team's key.
-- So a listener session reads a key only for a robot certificate it holds, never by team id.
create or replace function gk_private.director_robot_online_key(serial text, certificate bytea, key_id text)
returns text
language sql stable
security definer set search_path = pg_catalog, pg_temp
as $$
  select k.sealed_private_key
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
    join gk_private.director_keys k on k.team_id = r.team_id
   where c.serial = director_robot_online_key.serial
     and c.profile = 'robot' and c.status = 'issued' and c.not_after > now()
     and c.pem is not null
     and decode(regexp_replace(c.pem, '-----(BEGIN|END) CERTIFICATE-----|\s', '', 'g'), 'base64') = director_robot_online_key.certificate
     and k.key_id = director_robot_online_key.key_id and k.role = 'online';
$$;
grant execute on function gk_private.director_robot_online_key(text, bytea, text) to gk_peer;

-- The listeners' built-in CA (src/cli/parts.ts): the CRL's part of the local CA, granted with
-- gk_api's in sql/920_api_role.sql.
