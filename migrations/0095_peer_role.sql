-- Up Migration
-- gk_peer: the role the mutual-TLS listeners' connections run as (the peer gateway where agents
-- register and heartbeat, the robot API where robots read certificates and director metadata and
-- post manifests and events), so no network-facing request runs as the database owner. It reads
-- nothing by default; what those routes need is granted in sql/930_peer_role.sql. The login
-- (the embedded database's gk_api_login, or the role of API_DATABASE_URL) is a NOINHERIT member
-- and switches to it on connecting (src/peers/peer-role.ts).
-- Roles are cluster-wide: another database on the same server may have made it already, or be
-- making it right now.
do $$
begin
  begin
    create role gk_peer nologin;
  exception when duplicate_object or unique_violation then null;
  end;
  -- Without API_DATABASE_URL the listeners connect as this role and switch to gk_peer, which a
  -- non-superuser owner may do only as a member.
  begin
    execute format('grant gk_peer to %I', current_user);
  exception when others then
    if not pg_has_role(current_user, 'gk_peer', 'member') then
      raise;
    end if;
  end;
end $$;

-- Down Migration
-- The role stays (cluster-wide, possibly used by another database); its grants go with the objects.
select 1;
