-- Up Migration
-- gk_api: the role the admin server's connections run as outside GraphQL (token lookup,
-- readiness, /metrics, the areas' routes), so no route runs as the database owner. It reads
-- what a viewer reads; the few private things the routes need are granted in
-- sql/920_api_role.sql. A login role (the embedded database's gk_api_login, or the role of
-- API_DATABASE_URL) is a NOINHERIT member of gk_api, gk_admin and gk_viewer: it switches to
-- gk_api on connecting and to gk_admin/gk_viewer per GraphQL request (src/server/api-role.ts).
-- Roles are cluster-wide: another database on the same server may have made it already, or be
-- making it right now.
do $$
begin
  begin
    create role gk_api nologin;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    grant gk_viewer to gk_api;
  exception when unique_violation then null;
  end;
  -- Without API_DATABASE_URL the server connects as this role and switches to gk_api, which a
  -- non-superuser owner may do only as a member.
  begin
    execute format('grant gk_api to %I', current_user);
  exception when others then
    if not pg_has_role(current_user, 'gk_api', 'member') then
      raise;
    end if;
  end;
end $$;

-- Down Migration
-- The role stays (cluster-wide, possibly used by another database); its grants go with the objects.
select 1;
