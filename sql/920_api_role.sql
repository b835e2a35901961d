-- What gk_api (migration 0091_api_role.sql) may do: the admin server's connections run as it
-- outside GraphQL, so token lookup, readiness, /metrics and the areas' routes never run as the
-- database owner. It reads gk_public as a viewer does (member of gk_viewer); below is the little
-- of gk_private those paths need, function by function and column by column.

grant usage on schema gk_private to gk_api;

-- USAGE on gk_private would let gk_api call every function there that PUBLIC may execute (the
-- default). A SECURITY INVOKER one runs with gk_api's own few privileges; a SECURITY DEFINER one
-- runs as the owner, so PUBLIC loses EXECUTE on those. Only the owner calls them (workers, the
-- CLI, other definer functions; triggers are not checked for EXECUTE), except the ones a default
-- or a constraint calls for whoever writes the row (pure checks like tuf_canonical): they keep
-- it. Views call no definer function of gk_private. This file runs after every change of sql/
-- and after every migration (src/db/migrate.ts applyStoredLogic), so functions added later are
-- covered too.
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

-- Entry points of the server itself: token lookup (sql/100_api_tokens.sql) and the audit
-- recorder (sql/120_api_audit.sql), both SECURITY DEFINER where they are defined.
grant execute on function gk_private.api_token_lookup(bytea) to gk_api;
grant execute on function gk_private.audit_record(uuid, text, text, text, text, text[], jsonb, text, text, int) to gk_api;

-- /metrics (src/server/metrics.ts): the queue and the latest activations, read by definer
-- functions (graphile_worker's tables and the activation registry are the owner's).
alter function gk_private.queue_jobs_by_task() security definer set search_path = pg_catalog, pg_temp;
alter function gk_private.activations_latest() security definer set search_path = pg_catalog, pg_temp;
grant execute on function gk_private.queue_jobs_by_task() to gk_api;
grant execute on function gk_private.activations_latest() to gk_api;
-- /metrics, CRL age (src/certificates/metrics.ts): the built-in CA's CRL dates (granted below).

-- One-time key downloads (src/certificates/parked-keys.ts): lock, read and delete the parked
-- sealed keys, record downloaded_at. SELECT … FOR UPDATE needs an UPDATE privilege on some column;
-- update (sealed_key) and update (name) are granted for those row locks only (the code never
-- updates them; deleting a key is the download itself).
alter function gk_private.certificate_is_dirty(uuid) security definer set search_path = pg_catalog, pg_temp;
grant execute on function gk_private.certificate_is_dirty(uuid) to gk_api;
grant select (certificate_id, sealed_key), update (sealed_key), delete on gk_private.certificate_private_keys to gk_api;
grant update (downloaded_at) on gk_public.certificates to gk_api;
grant update (name) on gk_public.provisioning_credentials to gk_api;

-- /ca (src/certificates/routes.ts) through the server's own built-in CA (src/cli/parts.ts): the CA
-- certificate, and the CRL, which it regenerates when stale (src/adapters/ca/local.ts crlPem:
-- lock the authority, read the revoked serials, sign, store). It reads the sealed CA key, which
-- only opens under the master key the process holds anyway, and inserts the authority when no
-- process has made it yet.
grant select (name, certificate_pem, private_key_sealed, revocation_seq, crl_number, crl_revision, crl_pem, crl_this_update, crl_next_update),
      insert (name, certificate_pem, private_key_sealed),
      update (crl_pem, crl_number, crl_revision, crl_this_update, crl_next_update)
   on gk_private.local_ca_authorities to gk_api;
grant select (authority, serial, revoked_at, reason, status, not_after) on gk_private.local_ca_certificates to gk_api;
