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

-- A manifest a robot reported (src/robots/robot-routes.ts); `valid` says whether it has the
-- shape of a signed manifest ({signed, signatures}). Retention prunes them (robot_manifests).
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
