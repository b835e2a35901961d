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
    -- Robot API, exports (src/exports/robot-routes.ts): where a robot fetches its team's image.
    'gk_private.export_robot_fetch(uuid, uuid)',
    -- Robot API, robots (src/robots/robot-routes.ts, manifest.ts, certificate.ts): a manifest and
    -- its ECUs' registered keys (to verify it), its replay check and comparison with the
    -- director's targets (storing it: not granted, below), the replacement of its certificate.
    -- (Reading the certificate goes through the presented one: robot_presented_… below.)
    'gk_private.robot_manifest_received(uuid, uuid, boolean, jsonb)',
    'gk_private.robot_manifest_accepted(uuid, uuid, jsonb, jsonb)',
    'gk_private.robot_ecu_keys(uuid)',
    'gk_private.robots_certificate_replacements(uuid[], text[])'
  ]::regprocedure[] loop
    execute format('alter function %s security definer set search_path = pg_catalog, pg_temp', f);
    execute format('grant execute on function %s to gk_peer', f);
  end loop;
end $$;

-- Robot API, robots: a manifest is stored only through robot_manifest_accepted (its replay check
-- and comparison with the director's targets, which call robot_manifest_received as the owner),
-- never by the robot's connection directly.
revoke execute on function gk_private.robot_manifest_received(uuid, uuid, boolean, jsonb) from gk_peer;

-- Robot API, robots: the robot's row lock before a replacement (SELECT … FOR UPDATE needs an
-- UPDATE privilege; certificate_dirty_since, which the replacement function clears anyway).
grant select (id, certificate_generation, certificate_dirty_since), update (certificate_dirty_since) on gk_public.robots to gk_peer;

-- Certificates are read only as the robot that presented one (robot_presented below): gk_peer
-- reads no certificate row, PEM or serial directly, so SQL on a listener's connection cannot take
-- another robot's certificate and present it to these entry points. An older release granted
-- the table, robot_current_certificate and download_certificate: revoked here.
revoke all on gk_public.certificates from gk_peer;
revoke execute on function gk_private.robot_current_certificate(uuid) from gk_peer;
revoke execute on function gk_public.download_certificate(uuid) from gk_peer;
alter function gk_private.robot_current_certificate(uuid) security definer set search_path = pg_catalog, pg_temp;

-- The robot whose certificate the robot API verified in the TLS handshake (src/peers/robot-api.ts
-- authenticateRobot: its serial and DER bytes): what robot_certificate_identity requires (a robot
-- certificate, issued, unexpired, of a robot still in its team), and byte for byte the one stored
-- under that serial. The conditions are spelled out here rather than joined to that definer
-- function, which the planner cannot inline: it then decoded every certificate's PEM (26 ms a
-- request with 1,000 robots instead of under 1 ms). No row: refuse.
create or replace function gk_private.robot_presented(serial text, certificate bytea)
returns table (certificate_id uuid, robot_id uuid, team_id uuid)
language sql stable
security definer set search_path = pg_catalog, pg_temp
as $$
  select c.id, r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_presented.serial and c.profile = 'robot' and c.status = 'issued' and c.not_after > now()
     and c.pem is not null
     and decode(regexp_replace(c.pem, '-----(BEGIN|END) CERTIFICATE-----|\s', '', 'g'), 'base64') = robot_presented.certificate;
$$;

-- The robot a request authenticated by robot_presented comes from, for the reads of that request:
-- the same certificate, byte for byte, of a robot still in its team, unexpired, and issued — or
-- superseded meanwhile by this very request's hand-over (or a concurrent read's of the same
-- robot: src/robots/certificate.ts), which revokes it as 'superseded' at once. It names that
-- robot only, and only for a holder of its certificate; authentication itself stays strict.
create or replace function gk_private.robot_presenting(serial text, certificate bytea)
returns table (robot_id uuid, team_id uuid)
language sql stable
security definer set search_path = pg_catalog, pg_temp
as $$
  select r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_presenting.serial and c.profile = 'robot' and c.not_after > now()
     and (c.status = 'issued' or (c.status in ('revoking', 'revoked') and c.revocation_reason = 'superseded'))
     and c.pem is not null
     and decode(regexp_replace(c.pem, '-----(BEGIN|END) CERTIFICATE-----|\s', '', 'g'), 'base64') = robot_presenting.certificate;
$$;

-- The presenting robot's current certificate (src/robots/certificate.ts current). One row at
-- most, and said so (rows 1): on the default estimate of 1,000 rows, certificate.ts's join of it
-- to gk_public.robots was a hash join over every robot for each certificate read.
create or replace function gk_private.robot_presented_current_certificate(serial text, certificate bytea)
returns setof gk_public.certificates
language sql stable rows 1
security definer set search_path = pg_catalog, pg_temp
as $$
  select c.* from gk_private.robot_presenting(robot_presented_current_certificate.serial, robot_presented_current_certificate.certificate) p
   cross join lateral gk_private.robot_current_certificate(p.robot_id) c;
$$;

-- Status and PEM of one of the presenting robot's certificates (its replacement being issued).
create or replace function gk_private.robot_presented_certificate(serial text, certificate bytea, id uuid)
returns table (status text, pem text)
language sql stable
security definer set search_path = pg_catalog, pg_temp
as $$
  select c.status, c.pem
    from gk_private.robot_presenting(robot_presented_certificate.serial, robot_presented_certificate.certificate) p
    join gk_public.certificates c on c.robot_id = p.robot_id and c.profile = 'robot'
   where c.id = robot_presented_certificate.id;
$$;

-- The hand-over of one of the presenting robot's certificates: gk_public.download_certificate (an
-- invoker function GraphQL calls too: reads the row, records downloaded_at or fetch_requested_at),
-- run as the owner here; any other certificate is not found.
create or replace function gk_private.robot_presented_download(serial text, certificate bytea, id uuid)
returns text
language plpgsql volatile
security definer set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select 1
                   from gk_private.robot_presenting(robot_presented_download.serial, robot_presented_download.certificate) p
                   join gk_public.certificates c on c.robot_id = p.robot_id and c.profile = 'robot'
                  where c.id = robot_presented_download.id) then
    raise exception 'certificate % not found', robot_presented_download.id using errcode = 'P0002';
  end if;
  return gk_public.download_certificate(robot_presented_download.id);
end;
$$;

grant execute on function gk_private.robot_presented(text, bytea),
      gk_private.robot_presenting(text, bytea),
      gk_private.robot_presented_current_certificate(text, bytea),
      gk_private.robot_presented_certificate(text, bytea, uuid),
      gk_private.robot_presented_download(text, bytea, uuid) to gk_peer;

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
-- The director's keys: gk_peer inserts a new team's (sealed in Node) but reads none directly: a
-- robot's online key only through director_robot_online_key below. An older release granted it
-- SELECT on the table; the table-level REVOKE takes the column grants with it.
revoke select on gk_private.director_keys from gk_peer;
grant insert (team_id, key_id, role, sealed_private_key) on gk_private.director_keys to gk_peer;
grant select (robot_id, team_id, root_version, dirty, expires) on gk_public.robot_directors to gk_peer;
grant select (robot_id, targets, snapshot, timestamp) on gk_public.robot_director_documents to gk_peer;
-- The clean read checks that the robot has no pending rollout row (which makes it dirty).
grant select (robot_id, state) on gk_public.rollout_robots to gk_peer;

-- The sealed director online key `key_id` of the team of the robot whose certificate the robot
-- API verified in the TLS handshake (src/peers/robot-api.ts authenticateRobot: its serial and its
-- DER bytes, robot_presenting above). No row: not that robot's team's key. So a listener session
-- reads a key only for a robot certificate it holds, never by team id.
create or replace function gk_private.director_robot_online_key(serial text, certificate bytea, key_id text)
returns text
language sql stable
security definer set search_path = pg_catalog, pg_temp
as $$
  select k.sealed_private_key
    from gk_private.robot_presenting(director_robot_online_key.serial, director_robot_online_key.certificate) p
    join gk_private.director_keys k on k.team_id = p.team_id
   where k.key_id = director_robot_online_key.key_id and k.role = 'online';
$$;
grant execute on function gk_private.director_robot_online_key(text, bytea, text) to gk_peer;

-- The listeners' built-in CA (src/cli/parts.ts): the CRL's part of the local CA, granted with
-- gk_api's in sql/920_api_role.sql.
