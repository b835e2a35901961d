-- No role but the owner may call a SECURITY DEFINER function of gk_private unless a grants file
-- names it (sql/920_api_role.sql for gk_api, sql/930_peer_role.sql for gk_peer): gk_api and
-- gk_peer have USAGE on gk_private, and PUBLIC's default EXECUTE would let them run any such
-- function as the owner. A SECURITY INVOKER one runs with the caller's own few privileges, so it
-- keeps PUBLIC's EXECUTE. Only the owner calls the rest (workers, the CLI, other definer
-- functions; triggers are not checked for EXECUTE), except the ones a default, a constraint, a
-- view or a policy calls for whoever uses it (pure checks like tuf_canonical): they keep it.
-- Last of sql/ on purpose: files are re-applied from the first changed one on (src/db/migrate.ts
-- applyStoredLogic), so this runs after every change and every migration, after whatever made a
-- function SECURITY DEFINER (CREATE OR REPLACE keeps a function's grants, ALTER FUNCTION too).
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'gk_private'::regnamespace and p.prosecdef and p.prokind in ('f', 'p')
       and not exists (select 1 from pg_depend d
                        where d.refclassid = 'pg_proc'::regclass and d.refobjid = p.oid
                          and d.classid in ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_rewrite'::regclass, 'pg_policy'::regclass))
  loop
    execute format('revoke execute on function %s from public', f);
  end loop;
end $$;
