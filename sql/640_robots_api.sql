-- The robot API's stored logic: who a presented certificate is (every request asks, so a revoked
-- or superseded certificate is refused at once), and what a robot may write (its own rows only:
-- the robot and team come from the identity, never from the request body).

-- The robot a certificate serial authenticates: a robot certificate, issued and unexpired, whose
-- robot still exists and is still in the team the certificate was issued for. No row: refuse.
create or replace function gk_private.robot_certificate_identity(serial text)
returns table (certificate_id uuid, robot_id uuid, team_id uuid)
language sql stable
as $$
  select c.id, r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_certificate_identity.serial
     and c.profile = 'robot'
     and c.status = 'issued'
     and c.not_after > now();
$$;

-- A manifest a robot reported (src/robots/robot-routes.ts), stored only once its signatures
-- verified against the ECUs' registered keys (src/robots/manifest.ts): `valid` is then true.
-- Retention prunes them (robot_manifests).
create or replace function gk_private.robot_manifest_received(robot_id uuid, team_id uuid, valid boolean, body jsonb)
returns gk_public.robot_manifests
language sql volatile
as $$
  insert into gk_public.robot_manifests (robot_id, team_id, valid, body)
  select r.id, r.team_id, robot_manifest_received.valid, robot_manifest_received.body
    from gk_public.robots r
   where r.id = robot_manifest_received.robot_id and r.team_id = robot_manifest_received.team_id
  returning *;
$$;

-- The registered keys of a robot's ECUs, for checking its manifest's signatures.
create or replace function gk_private.robot_ecu_keys(robot_id uuid)
returns table (serial text, is_primary boolean, public_key text)
language sql stable
as $$
  select e.serial, e.is_primary, k.public_key
    from gk_public.ecus e left join gk_public.ecu_keys k on k.ecu_id = e.id
   where e.robot_id = robot_ecu_keys.robot_id
   order by e.serial
   limit 1000;
$$;

-- ECU keys are registered and replaced by an admin only.
grant insert (ecu_id, team_id, public_key), update (public_key), delete on gk_public.ecu_keys to gk_admin;
