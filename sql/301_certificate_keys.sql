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

-- Records an issued certificate and, when the CA generated the key pair, its sealed private key,
-- in one statement (the task calls this inside its transaction instead of certificate_issued).
create or replace function gk_private.certificate_issued_with_key(id uuid, ca_ref text, serial text, pem text, sealed_key text)
returns boolean
language plpgsql volatile
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_team uuid;
begin
  if not coalesce(gk_private.certificate_issued(id, ca_ref, serial, pem), false) then
    return false;
  end if;
  if sealed_key is not null then
    select c.owner_team_id into v_team from gk_public.certificates c where c.id = certificate_issued_with_key.id;
    insert into gk_private.certificate_private_keys (certificate_id, owner_team_id, sealed_key)
    values (certificate_issued_with_key.id, v_team, certificate_issued_with_key.sealed_key);
  end if;
  return true;
end;
$$;

-- Nobody but the owner (the worker and the HTTP server connect as it) touches parked keys.
revoke all on gk_private.certificate_private_keys from public, gk_admin, gk_viewer;
