-- Retention of the local CA's certificates: those that expired before the cutoff go (a CRL
-- stops listing a revoked certificate a day after its expiry, so nothing still needs them).
-- Pending requests are never pruned here: they have no certificate yet.
create or replace function gk_private.retention_prune__local_ca_certificates(cutoff timestamptz)
returns bigint
language sql volatile
set search_path to pg_catalog, pg_temp
as $$
  with gone as (
    delete from gk_private.local_ca_certificates
     where status <> 'pending' and not_after < least(cutoff, now() - interval '1 day')
    returning 1
  )
  select count(*) from gone;
$$;
comment on function gk_private.retention_prune__local_ca_certificates is 'Retention: deletes local CA certificates that expired before the cutoff.';
