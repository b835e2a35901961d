-- Certificate lifecycle: the database decides what must be issued and revoked; tasks
-- (tasks/certificates__*.ts) perform the CA calls and record the outcome with one call here.

-- Row level, before the change: an ownerless live certificate becomes 'revoking' (so the CHECK
-- never sees an ownerless live row), and entering a pending state opens its bookkeeping.
create or replace function gk_private.tg_certificates__lifecycle() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if new.status in ('issuing', 'issued') and num_nonnulls(new.robot_id, new.provisioning_credential_id, new.team_id, new.worker_id, new.controller_id) = 0 then
    new.status := 'revoking';
    new.revocation_reason := coalesce(new.revocation_reason, 'cessationOfOperation');
  end if;
  -- An unresolved issuance whose owner went is the revoke path's question now (it asks the CA
  -- again, or marks the row unresolved itself).
  if tg_op = 'UPDATE' and old.status is distinct from new.status then
    new.unresolved := false;
  end if;
  if new.status in ('issuing', 'revoking') and (tg_op = 'INSERT' or old.status is distinct from new.status) then
    new.attempts := 0;
    new.last_error := null;
    new.next_attempt_at := now() + gk_private.bin_lease();
    if new.status = 'revoking' then
      new.revoke_requested_at := coalesce(new.revoke_requested_at, now());
      new.revocation_reason := coalesce(new.revocation_reason, 'unspecified');
    end if;
  elsif new.status not in ('issuing', 'revoking') then
    new.next_attempt_at := null;
  end if;
  return new;
end;
$$;

drop trigger if exists _100_lifecycle on gk_public.certificates;
create trigger _100_lifecycle
  before insert or update of status, robot_id, provisioning_credential_id, team_id, worker_id, controller_id on gk_public.certificates
  for each row execute function gk_private.tg_certificates__lifecycle();

-- Statement level with transition tables: one enqueue_many for the whole statement, however
-- many rows it touched. FK SET NULL actions of a cascading DELETE arrive here as one statement
-- (a team delete nulls robot_id and team_id of thousands of rows: one call, a row may appear twice).
create or replace function gk_private.tg_certificates__enqueue_revocations() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  -- Entered 'revoking' in this statement, or an operator asked for a retry.
  perform gk_private.enqueue_id_batches('certificates__revoke', array(
    select distinct n.id from new_rows n join old_rows o on o.id = n.id
     where n.status = 'revoking'
       and (o.status <> 'revoking' or n.retry_requested_at is distinct from o.retry_requested_at)));
  perform gk_private.enqueue_id_batches('certificates__issue', array(
    select distinct n.id from new_rows n join old_rows o on o.id = n.id
     where n.status = 'issuing' and n.retry_requested_at is distinct from o.retry_requested_at), 50);
  -- download_certificate asked for the PEM: fetch it from the CA (debounced per certificate).
  perform gk_private.enqueue('certificates__fetch', jsonb_build_object('id', f.id),
                             job_key := 'certificates__fetch:' || f.id)
     from (select distinct n.id from new_rows n join old_rows o on o.id = n.id
            where n.status = 'issued' and n.pem is null
              and n.fetch_requested_at is distinct from o.fetch_requested_at) f;
  -- A credential is issued once all its certificates are. (Statement triggers fire for zero rows
  -- too: the guards stop credentials and certificates from re-triggering each other forever.)
  if not exists (select 1 from new_rows n where n.status = 'issued' and n.provisioning_credential_id is not null) then
    return null;
  end if;
  update gk_public.provisioning_credentials p
     set status = 'issued'
   where p.status = 'issuing'
     and p.id in (select n.provisioning_credential_id from new_rows n where n.status = 'issued')
     and not exists (select 1 from gk_public.certificates c
                      where c.provisioning_credential_id = p.id and c.status <> 'issued');
  return null;
end;
$$;

drop trigger if exists _500_enqueue_revocations on gk_public.certificates;
create trigger _500_enqueue_revocations
  after update on gk_public.certificates
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_certificates__enqueue_revocations();

create or replace function gk_private.tg_certificates__enqueue_issuance() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  perform gk_private.enqueue_id_batches('certificates__issue',
    array(select id from new_rows where status = 'issuing'), 50);
  perform gk_private.enqueue_id_batches('certificates__revoke',
    array(select id from new_rows where status = 'revoking'));
  return null;
end;
$$;

drop trigger if exists _500_enqueue_issuance on gk_public.certificates;
create trigger _500_enqueue_issuance
  after insert on gk_public.certificates
  referencing new table as new_rows
  for each statement execute function gk_private.tg_certificates__enqueue_issuance();

-- Revoking a credential (through the function below or a plain UPDATE) revokes both certificates.
create or replace function gk_private.tg_provisioning_credentials__revoke_certificates() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if not exists (select 1 from new_rows n join old_rows o on o.id = n.id where n.status = 'revoked' and o.status <> 'revoked') then
    return null;
  end if;
  update gk_public.certificates c
     set status = 'revoking', revocation_reason = 'cessationOfOperation'
   where c.provisioning_credential_id in (
           select n.id from new_rows n join old_rows o on o.id = n.id
            where n.status = 'revoked' and o.status <> 'revoked')
     and c.status in ('issuing', 'issued');
  return null;
end;
$$;

drop trigger if exists _500_revoke_certificates on gk_public.provisioning_credentials;
create trigger _500_revoke_certificates
  after update on gk_public.provisioning_credentials
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_provisioning_credentials__revoke_certificates();

-- A credential expires with its certificates, either way round: a credential marked expired takes
-- its issued certificates along (dropping their parked keys, sql/301), and expire_certificates
-- marks the credential of an expired certificate.
create or replace function gk_private.tg_provisioning_credentials__expire_certificates() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if not exists (select 1 from new_rows n join old_rows o on o.id = n.id where n.status = 'expired' and o.status <> 'expired') then
    return null;
  end if;
  update gk_public.certificates c
     set status = 'expired'
   where c.provisioning_credential_id in (
           select n.id from new_rows n join old_rows o on o.id = n.id
            where n.status = 'expired' and o.status <> 'expired')
     and c.status = 'issued';
  return null;
end;
$$;

drop trigger if exists _500_expire_certificates on gk_public.provisioning_credentials;
create trigger _500_expire_certificates
  after update on gk_public.provisioning_credentials
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_provisioning_credentials__expire_certificates();

-- ---------------------------------------------------------------------------------------------
-- Operator functions (GraphQL mutations). SECURITY INVOKER: what a role may do is decided by its
-- table privileges (the viewer has none to write), and side effects are enqueued by the
-- (SECURITY DEFINER) triggers. Each validates its input and raises a one-line error.

drop function if exists gk_public.request_certificate(uuid, text, interval);
create or replace function gk_public.request_certificate(
  robot_id uuid,
  public_key_pem text default null,
  valid_for interval default interval '365 days',
  csr_pem text default null
) returns gk_public.certificates
language plpgsql volatile
as $$
declare
  v_team uuid;
  v_cert gk_public.certificates;
begin
  select r.team_id into v_team from gk_public.robots r where r.id = request_certificate.robot_id;
  if v_team is null then
    raise exception 'robot % not found', request_certificate.robot_id using errcode = 'P0002';
  end if;
  perform gk_public.check_certificate_request(public_key_pem, valid_for);
  if csr_pem is not null then
    if public_key_pem is not null then
      raise exception 'give public_key_pem or csr_pem, not both' using errcode = '22023';
    end if;
    if csr_pem !~ '^\s*-----BEGIN CERTIFICATE REQUEST-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE REQUEST-----\s*$' then
      raise exception 'csr_pem must be a PEM "CERTIFICATE REQUEST" (PKCS#10)' using errcode = '22023';
    end if;
  end if;
  insert into gk_public.certificates (owner_team_id, robot_id, profile, public_key_pem, csr_pem, not_after)
  values (v_team, request_certificate.robot_id, 'robot', request_certificate.public_key_pem, request_certificate.csr_pem,
          date_trunc('second', now() + valid_for))
  returning * into v_cert;
  return v_cert;
end;
$$;
comment on function gk_public.request_certificate is 'Requests a robot certificate; a task issues it at the CA. The holder''s key comes as a public key (local CA) or a CSR (any CA); without either the CA generates the key pair.';

create or replace function gk_public.check_certificate_request(public_key_pem text, valid_for interval)
returns void
language plpgsql immutable
as $$
begin
  if valid_for is null or valid_for < interval '1 hour' or valid_for > interval '10 years' then
    raise exception 'valid_for must be between 1 hour and 10 years (got %)', valid_for using errcode = '22023';
  end if;
  if public_key_pem is not null and public_key_pem !~ '^\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----\s*$' then
    raise exception 'public_key_pem must be a PEM "PUBLIC KEY" (SPKI)' using errcode = '22023';
  end if;
end;
$$;

create or replace function gk_public.create_provisioning_credential(
  team_id uuid,
  name text,
  valid_for interval default interval '365 days'
) returns gk_public.provisioning_credentials
language plpgsql volatile
as $$
declare
  v_cred gk_public.provisioning_credentials;
begin
  if not exists (select 1 from gk_public.teams t where t.id = create_provisioning_credential.team_id) then
    raise exception 'team % not found', create_provisioning_credential.team_id using errcode = 'P0002';
  end if;
  perform gk_public.check_certificate_request(null, valid_for);
  insert into gk_public.provisioning_credentials (team_id, name, expires_at)
  values (create_provisioning_credential.team_id, create_provisioning_credential.name, date_trunc('second', now() + valid_for))
  returning * into v_cred;
  insert into gk_public.certificates (owner_team_id, provisioning_credential_id, profile, not_after)
  select v_cred.team_id, v_cred.id, p, v_cred.expires_at from unnest(array['client_auth', 'provisioning']) p;
  return v_cred;
end;
$$;
comment on function gk_public.create_provisioning_credential is 'Creates a provisioning credential; its client_auth and provisioning certificates are issued by a task.';

create or replace function gk_public.revoke_provisioning_credential(id uuid)
returns gk_public.provisioning_credentials
language plpgsql volatile
as $$
declare
  v_cred gk_public.provisioning_credentials;
begin
  select * into v_cred from gk_public.provisioning_credentials p where p.id = revoke_provisioning_credential.id for update;
  if not found then
    raise exception 'provisioning credential % not found', revoke_provisioning_credential.id using errcode = 'P0002';
  end if;
  if v_cred.status = 'revoked' then
    return v_cred; -- revoking twice is fine
  end if;
  if v_cred.status = 'expired' then
    raise exception 'provisioning credential % has expired; there is nothing to revoke', v_cred.id using errcode = '55000';
  end if;
  update gk_public.provisioning_credentials p set status = 'revoked', revoked_at = now()
   where p.id = v_cred.id returning * into v_cred;
  return v_cred;
end;
$$;
comment on function gk_public.revoke_provisioning_credential is 'Revokes a provisioning credential; both of its certificates go to the bin and are revoked at the CA.';

-- Returns the PEM once the CA has handed it over, recording downloaded_at. Until then it asks a
-- task to fetch it from the CA (that is also where an asynchronous CA tells us the serial) and
-- returns null: call again.
create or replace function gk_public.download_certificate(id uuid)
returns text
language plpgsql volatile
as $$
declare
  v_cert gk_public.certificates;
begin
  select * into v_cert from gk_public.certificates c where c.id = download_certificate.id;
  if not found then
    raise exception 'certificate % not found', download_certificate.id using errcode = 'P0002';
  end if;
  if v_cert.status not in ('issuing', 'issued') then
    raise exception 'certificate % is %, it cannot be downloaded', v_cert.id, v_cert.status using errcode = '55000';
  end if;
  if v_cert.pem is not null then
    update gk_public.certificates c set downloaded_at = coalesce(c.downloaded_at, now())
     where c.id = v_cert.id and c.downloaded_at is null;
    return v_cert.pem;
  end if;
  if v_cert.status = 'issued' then
    update gk_public.certificates c set fetch_requested_at = now() where c.id = v_cert.id;
  end if;
  return null;
end;
$$;
comment on function gk_public.download_certificate is 'The certificate PEM (records downloaded_at). Null while the CA has not handed it over yet: call again shortly.';

-- ---------------------------------------------------------------------------------------------
-- Outcomes recorded by the tasks (one call each, conditional on the state they expect).

-- certificate_issued, certificate_issue_failed, certificates_revoked, certificates_revoke_failed
-- and the claims they are conditional on: sql/302_certificate_claims.sql.

-- ---------------------------------------------------------------------------------------------
-- Expiry sweeps: set-based single statements, each with an index behind it.

create or replace function gk_private.expire_certificates() returns bigint
language sql volatile
as $$
  with expired as (
    update gk_public.certificates c set status = 'expired'
     where c.status = 'issued' and c.not_after <= now()
    returning c.provisioning_credential_id),
  -- Their credentials go too (and with them, by trigger, the credentials' other certificates).
  creds as (
    update gk_public.provisioning_credentials p set status = 'expired', expired_at = now()
     where p.status in ('issuing', 'issued') and p.id in (select e.provisioning_credential_id from expired e)
    returning 1)
  select count(*) from expired;
$$;

-- expires_at is the earliest not_after of its certificates (kept so by certificate_fetched), so
-- this is one range condition on the partial index of live credentials.
create or replace function gk_private.expire_provisioning_credentials() returns bigint
language sql volatile
as $$
  with expired as (
    update gk_public.provisioning_credentials p set status = 'expired', expired_at = now()
     where p.status in ('issuing', 'issued') and p.expires_at <= now()
    returning 1)
  select count(*) from expired;
$$;

-- Grants. The generated CRUD mutations are hidden (smart tags); admins write through the functions
-- above, which need these column privileges. The viewer reads only.
comment on table gk_public.certificates is E'@behavior -insert -update -delete\nCertificates issued at the CA. A row outlives its owner until the CA has revoked it.';
comment on table gk_public.provisioning_credentials is E'@behavior -insert -update -delete\nA pair of certificates (client_auth, provisioning) for enrolling robots. Revoking it revokes both at the CA.';
grant select on gk_public.certificates, gk_public.provisioning_credentials to gk_viewer, gk_admin;
grant insert (owner_team_id, robot_id, provisioning_credential_id, profile, public_key_pem, csr_pem, not_after)
  on gk_public.certificates to gk_admin;
grant update (downloaded_at, fetch_requested_at, retry_requested_at) on gk_public.certificates to gk_admin;
grant insert (team_id, name, expires_at) on gk_public.provisioning_credentials to gk_admin;
grant update (status, revoked_at) on gk_public.provisioning_credentials to gk_admin;
