-- Retention of the local CA's certificates: those that expired before the cutoff go (a CRL
-- stops listing a revoked certificate a day after its expiry, so nothing still needs them),
-- oldest expiry first (local_ca_certificates_not_after_idx), at most max_rows per call.
-- Pending requests are never pruned here: they have no certificate yet.
drop function if exists gk_private.retention_prune__local_ca_certificates(timestamptz);
create or replace function gk_private.retention_prune__local_ca_certificates(cutoff timestamptz, max_rows int)
returns bigint
language sql volatile
set search_path to pg_catalog, pg_temp
as $$
  with doomed as (
    select c.id from gk_private.local_ca_certificates c
     where c.status <> 'pending' and c.not_after < least(cutoff, now() - interval '1 day')
     order by c.not_after
     limit max_rows),
  gone as (delete from gk_private.local_ca_certificates c using doomed d where c.id = d.id returning 1)
  select count(*) from gone;
$$;
comment on function gk_private.retention_prune__local_ca_certificates is 'Retention: deletes local CA certificates that expired before the cutoff, at most max_rows per call.';
