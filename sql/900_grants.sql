-- What each admin-API role sees and may change. Re-applied after every change of sql/ or migrations.
grant usage on schema gk_public to gk_viewer, gk_admin;
grant select on all tables in schema gk_public to gk_viewer, gk_admin;
grant insert, update, delete on gk_public.teams, gk_public.robots to gk_admin;
grant execute on all functions in schema gk_public to gk_viewer, gk_admin;
