-- What each admin-API role sees and may change. Re-applied after every change of sql/ or migrations.
grant usage on schema gk_public to gk_viewer, gk_admin;
grant select on all tables in schema gk_public to gk_viewer, gk_admin;
grant insert, update, delete on gk_public.teams, gk_public.robots to gk_admin;
grant execute on all functions in schema gk_public to gk_viewer, gk_admin;
-- A volatile SECURITY DEFINER function changes state past the table grants (retry_bin_item,
-- activate_reconciler): only the admin may call one. Revoked from PUBLIC too, which every role
-- (the viewer included) inherits from.
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'gk_public'::regnamespace and p.prosecdef and p.provolatile = 'v' and p.prokind = 'f'
  loop
    execute format('revoke execute on function %s from public, gk_viewer', f);
    execute format('grant execute on function %s to gk_admin', f);
  end loop;
end $$;
