-- Parked private keys (gk_private.certificate_private_keys, migration 0040): stored by the issue
-- task in the transaction that marks the certificate issued, handed out once by the admin HTTP
-- routes (src/certificates/routes.ts), and dropped as soon as the certificate stops being live: a
-- revoked or expired certificate's key must not stay downloadable.

-- Statement level with transition tables: a team delete revoking thousands of certificates is
-- one DELETE here, on the primary key.
create or replace function gk_private.tg_certificates__drop_parked_keys() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  delete from gk_private.certificate_private_keys k
   where k.certificate_id in (
           select n.id from new_rows n where n.status in ('revoking', 'revoked', 'expired', 'failed'));
  return null;
end;
$$;

drop trigger if exists _510_drop_parked_keys on gk_public.certificates;
create trigger _510_drop_parked_keys
  after update on gk_public.certificates
  referencing new table as new_rows
  for each statement execute function gk_private.tg_certificates__drop_parked_keys();

-- The issue task parks the key with gk_private.certificate_issued (sql/302_certificate_claims.sql),
-- in the statement that marks the certificate issued.

-- Nobody but the owner (the worker and the HTTP server connect as it) touches parked keys.
revoke all on gk_private.certificate_private_keys from public, gk_admin, gk_viewer;
