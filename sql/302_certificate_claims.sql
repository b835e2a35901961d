-- Claims and outcomes of the certificate tasks (tasks/certificates__issue.ts, __revoke.ts,
-- __fetch.ts). A task never holds a certificate's row lock across a CA call: it commits a claim
-- (claim_id, claim_expires_at) first, calls the CA without a transaction open, and records the
-- outcome with one call here that is conditional on its claim. So a platform statement (robot or
-- team DELETE, credential revoke) never waits on the network, and whatever happens between the
-- CA's signature and our record (deadlock, SIGKILL, a lost connection) leaves a row that says so:
-- issue_attempted_at is set before the first request leaves, the CA keeps our certificate id as
-- its request key, and the revoke path asks the CA what it issued under that id before it may
-- conclude never_issued.

-- How long a claim holds: the bin's lease plus the CA call's own timeout (the task passes it).
-- Past it the claim is dead (its worker was killed) and the reconciler or another task may take
-- the row; a late answer of the dead claim is still recorded (as an orphan, below).
create or replace function gk_private.certificate_claim_until(ca_timeout interval) returns timestamptz
language sql stable
as $$
  select now() + gk_private.bin_lease() + coalesce(ca_timeout, interval '0');
$$;

-- ---------------------------------------------------------------------------------------------
-- Issuance.

drop function if exists gk_private.certificate_claim_issue(uuid, uuid, interval, boolean);
create or replace function gk_private.certificate_claim_issue(id uuid, claim uuid, ca_timeout interval, keeps_keys boolean)
returns table (outcome text, owner_id text, profile text, public_key_pem text, csr_pem text, not_after timestamptz,
               attempts int, attempted_before boolean)
language plpgsql volatile
set search_path to pg_catalog, public, pg_temp
as $$
declare
  c gk_public.certificates;
begin
  -- A short row lock inside this one statement's transaction; nothing waits on the CA under it.
  -- Only an issuing row is locked: a revoke job claiming the same row (SKIP LOCKED) must not meet
  -- this lock and skip a row that was never ours.
  select * into c from gk_public.certificates x
   where x.id = certificate_claim_issue.id and x.status = 'issuing' for update;
  if not found or c.status <> 'issuing' or c.unresolved then
    -- Issued, revoked, or unresolved: an operator answers for that one (resolve_certificate).
    return query select 'gone'::text, null::text, null::text, null::text, null::text, null::timestamptz, 0, false;
    return;
  end if;
  if c.claim_expires_at > now() then
    return query select 'busy'::text, null::text, null::text, null::text, null::text, null::timestamptz, 0, false;
    return;
  end if;
  if c.public_key_pem is null and c.csr_pem is null and not keeps_keys then
    -- The CA would make a key pair this worker could not keep: nothing is sent to the CA.
    return query select 'no_secrets'::text, null::text, null::text, null::text, null::text, null::timestamptz, c.attempts, false;
    return;
  end if;
  update gk_public.certificates x
     set claim_id = certificate_claim_issue.claim,
         claim_expires_at = gk_private.certificate_claim_until(ca_timeout),
         issue_attempted_at = coalesce(x.issue_attempted_at, now()),
         next_attempt_at = greatest(x.next_attempt_at, gk_private.certificate_claim_until(ca_timeout))
   where x.id = c.id;
  return query select 'claimed'::text,
    coalesce(c.robot_id, c.provisioning_credential_id, c.team_id, c.worker_id, c.controller_id, c.owner_team_id)::text,
    c.profile, c.public_key_pem, c.csr_pem, c.not_after, c.attempts, c.issue_attempted_at is not null;
end;
$$;

-- A certificate the CA issued that no row may claim any more (the claim was lost, or the CA issued
-- it under an earlier attempt that lost its answer): it gets a row of its own, ownerless, so the
-- revoke path revokes it and the CRL lists it. Copies the original's tenant and profile.
create or replace function gk_private.certificate_orphans(id uuid, ca_refs text[], serials text[], pems text[] default null)
returns int
language sql volatile
as $$
  with o as (
    insert into gk_public.certificates
      (owner_team_id, profile, public_key_pem, csr_pem, not_after, status, ca_ref, serial, pem, issued_at,
       issue_attempted_at, revocation_reason)
    select c.owner_team_id, c.profile, c.public_key_pem, c.csr_pem, c.not_after, 'revoking', f.ca_ref, f.serial, f.pem, now(),
           now(), 'superseded'
      from gk_public.certificates c,
           unnest(certificate_orphans.ca_refs, certificate_orphans.serials,
                  coalesce(certificate_orphans.pems, array_fill(null::text, array[cardinality(certificate_orphans.ca_refs)])))
             as f(ca_ref, serial, pem)
     where c.id = certificate_orphans.id
       and not exists (select 1 from gk_public.certificates x where x.ca_ref = f.ca_ref)
    returning 1)
  select count(*)::int from o;
$$;

-- Records what the CA signed, conditional on the claim. Lock order: the provisioning credential
-- before the certificate, the order of the platform's own statements (a team delete cascades to
-- the credential, then its SET NULL reaches the certificate; a credential revoke updates its
-- certificates from the credential's trigger). The certificates' statement trigger then updates
-- the credential it already holds, so an issue and a delete can no longer deadlock.
-- Returns 'issued'; 'revoking' (the owner went meanwhile: recorded, revocation enqueued); or
-- 'orphan' (the claim was lost: the certificate got a row of its own, to be revoked).
drop function if exists gk_private.certificate_issued(uuid, text, text, text);
drop function if exists gk_private.certificate_issued_with_key(uuid, text, text, text, text);
create or replace function gk_private.certificate_issued(
  id uuid, claim uuid, ca_ref text, serial text, pem text, not_before timestamptz, not_after timestamptz, sealed_key text
) returns text
language plpgsql volatile
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v_status text;
  v_team uuid;
begin
  perform 1 from gk_public.provisioning_credentials p
   where p.id = (select c.provisioning_credential_id from gk_public.certificates c where c.id = certificate_issued.id)
     for no key update;
  update gk_public.certificates c
     set status = case when c.status = 'issuing' then 'issued' else c.status end,
         ca_ref = certificate_issued.ca_ref, serial = certificate_issued.serial, pem = certificate_issued.pem,
         not_before = certificate_issued.not_before, not_after = coalesce(certificate_issued.not_after, c.not_after),
         issued_at = now(), last_error = null, claim_id = null, claim_expires_at = null
   where c.id = certificate_issued.id and c.claim_id = certificate_issued.claim and c.ca_ref is null
     and c.status in ('issuing', 'revoking')
  returning c.status, c.owner_team_id into v_status, v_team;
  if not found then
    perform gk_private.certificate_orphans(id, array[ca_ref], array[serial], array[pem]);
    return 'orphan';
  end if;
  perform gk_private.provisioning_credentials_expire_with(array[id]);
  if v_status = 'issued' and sealed_key is not null then
    insert into gk_private.certificate_private_keys (certificate_id, owner_team_id, sealed_key)
    values (certificate_issued.id, v_team, certificate_issued.sealed_key);
  elsif v_status = 'revoking' then
    perform gk_private.enqueue_id_batches('certificates__revoke', array[id]);
  end if;
  return v_status;
end;
$$;

-- The CA call failed. `release`: nothing of this attempt exists at the CA (it refused, or the
-- request never left), so the claim ends now; otherwise (timed out, connection lost) the request
-- may still be signed, and the claim runs out by itself before anyone may conclude anything.
-- `forget_attempt`: and no earlier attempt is unaccounted for either (none was made, or the CA was
-- asked about them), so issue_attempted_at is cleared and a retry is not one after a lost answer.
-- A row whose owner went meanwhile is handed to the revoke path (which asks the CA before
-- concluding never_issued).
drop function if exists gk_private.certificate_issue_failed(uuid, text, boolean);
drop function if exists gk_private.certificate_issue_failed(uuid, uuid, text, boolean, boolean);
create or replace function gk_private.certificate_issue_failed(
  id uuid, claim uuid, error text, permanent boolean, release boolean, forget_attempt boolean default false
) returns void
language plpgsql volatile
as $$
declare
  v_status text;
begin
  update gk_public.certificates c
     set attempts = case when c.status = 'issuing' then c.attempts + 1 else c.attempts end,
         last_error = case when c.status = 'issuing' then left(error, 2000) else c.last_error end,
         status = case when permanent and c.status = 'issuing' then 'failed' else c.status end,
         next_attempt_at = case when c.status <> 'issuing' then c.next_attempt_at
                                when permanent then null
                                else greatest(now() + gk_private.bin_backoff(c.attempts + 1) + gk_private.bin_lease(),
                                              case when release then null else c.claim_expires_at end) end,
         claim_id = case when release then null else c.claim_id end,
         claim_expires_at = case when release then null else c.claim_expires_at end,
         issue_attempted_at = case when release and forget_attempt then null else c.issue_attempted_at end
   where c.id = certificate_issue_failed.id and c.claim_id is not distinct from certificate_issue_failed.claim
  returning c.status into v_status;
  if v_status = 'revoking' and release then
    perform gk_private.enqueue_id_batches('certificates__revoke', array[id]);
  end if;
end;
$$;

-- A retry after an attempt that may have reached the CA, on a CA that cannot be asked what it
-- issued under our id: signing again could leave the earlier certificate valid with no row. The
-- row stays 'issuing', visibly unresolved in the bin (last_error), and is not retried by itself
-- (next_attempt_at null) until an operator answers (resolve_certificate). An owner that went
-- meanwhile hands the row to the revoke path, which asks the same question.
create or replace function gk_private.certificate_issue_unresolved(id uuid, claim uuid, error text)
returns text
language plpgsql volatile
as $$
declare
  v_status text;
begin
  update gk_public.certificates c
     set unresolved = c.status = 'issuing',
         last_error = case when c.status = 'issuing' then left(error, 2000) else c.last_error end,
         next_attempt_at = case when c.status = 'issuing' then null else c.next_attempt_at end,
         claim_id = null, claim_expires_at = null
   where c.id = certificate_issue_unresolved.id and c.claim_id = certificate_issue_unresolved.claim
  returning c.status into v_status;
  if v_status = 'revoking' then
    perform gk_private.enqueue_id_batches('certificates__revoke', array[id]);
  end if;
  return v_status;
end;
$$;

-- The CA handed a deferred certificate over (download_certificate asked for it): keep the PEM,
-- the serial and the certificate's real validity.
create or replace function gk_private.certificate_fetched(id uuid, pem text, serial text, not_after timestamptz, not_before timestamptz default null)
returns boolean
language plpgsql volatile
as $$
begin
  update gk_public.certificates c
     set pem = coalesce(c.pem, certificate_fetched.pem),
         serial = coalesce(c.serial, certificate_fetched.serial),
         not_after = coalesce(certificate_fetched.not_after, c.not_after),
         not_before = coalesce(certificate_fetched.not_before, c.not_before)
   where c.id = certificate_fetched.id;
  if not found then
    return false;
  end if;
  perform gk_private.provisioning_credentials_expire_with(array[id]);
  return true;
end;
$$;

-- A credential expires when either of its certificates does: its expires_at follows the earliest
-- not_after of its certificates, the real one once the CA signed (a CA profile may give more or
-- less than was asked).
create or replace function gk_private.provisioning_credentials_expire_with(certificate_ids uuid[]) returns void
language sql volatile
as $$
  update gk_public.provisioning_credentials p set expires_at = c.not_after
    from (select c.provisioning_credential_id as cred, min(c.not_after) as not_after
            from gk_public.certificates c
           where c.provisioning_credential_id in (select x.provisioning_credential_id from gk_public.certificates x
                                                   where x.id = any(certificate_ids))
           group by 1) c
   where p.id = c.cred and p.expires_at is distinct from c.not_after;
$$;

-- ---------------------------------------------------------------------------------------------
-- Revocation.

-- Claims the batch's revoking certificates that no live claim holds (a duplicate job, or an
-- issuance still inside its CA call, keeps them). Unresolved rows wait for an operator.
drop function if exists gk_private.certificates_claim_revoke(uuid[], uuid, interval);
create or replace function gk_private.certificates_claim_revoke(ids uuid[], claim uuid, ca_timeout interval)
returns table (id uuid, ca_ref text, serial text, revocation_reason text, attempted boolean)
language sql volatile
as $$
  with free as (
    select c.id from gk_public.certificates c
     where c.id = any(certificates_claim_revoke.ids) and c.status = 'revoking' and not c.unresolved
       and (c.claim_expires_at is null or c.claim_expires_at <= now())
     order by c.id
       for update skip locked)
  update gk_public.certificates c
     set claim_id = certificates_claim_revoke.claim,
         claim_expires_at = gk_private.certificate_claim_until(ca_timeout),
         next_attempt_at = greatest(c.next_attempt_at, gk_private.certificate_claim_until(ca_timeout))
    from free where c.id = free.id
  returning c.id, c.ca_ref, c.serial, c.revocation_reason, c.issue_attempted_at is not null;
$$;

-- What the CA told us while revoking: the handle and serial of what it issued (looked up by our
-- id, or fetched by handle). They are what ends up on the CRL.
drop function if exists gk_private.certificates_set_serials(uuid[], text[]);
create or replace function gk_private.certificates_learnt(ids uuid[], ca_refs text[], serials text[], claim uuid)
returns void
language sql volatile
as $$
  update gk_public.certificates c
     set ca_ref = coalesce(c.ca_ref, s.ca_ref), serial = coalesce(c.serial, s.serial)
    from unnest(ids, ca_refs, serials) as s(id, ca_ref, serial)
   where c.id = s.id and c.claim_id = certificates_learnt.claim;
$$;

-- Revoked at the CA (or never issued there): done, and the claim ends.
drop function if exists gk_private.certificates_revoked(uuid[], uuid[]);
create or replace function gk_private.certificates_revoked(ids uuid[], never_issued_ids uuid[], claim uuid)
returns int
language sql volatile
as $$
  with done as (
    update gk_public.certificates c
       set status = 'revoked', revoked_at = now(), last_error = null, claim_id = null, claim_expires_at = null,
           never_issued = c.id = any(certificates_revoked.never_issued_ids)
     where c.id = any(certificates_revoked.ids || certificates_revoked.never_issued_ids) and c.status = 'revoking'
       and c.claim_id = certificates_revoked.claim
    returning 1)
  select count(*)::int from done;
$$;

drop function if exists gk_private.certificates_revoke_failed(uuid[], text);
create or replace function gk_private.certificates_revoke_failed(ids uuid[], error text, claim uuid)
returns void
language sql volatile
as $$
  update gk_public.certificates c
     set attempts = c.attempts + 1,
         last_error = left(error, 2000),
         next_attempt_at = now() + gk_private.bin_backoff(c.attempts + 1) + gk_private.bin_lease(),
         claim_id = null, claim_expires_at = null
   where c.id = any(ids) and c.status = 'revoking' and c.claim_id = certificates_revoke_failed.claim;
$$;

-- An issuance may have reached the CA and the CA cannot say what it issued for this id: the row
-- stays in the bin, visibly unresolved, until an operator checks the CA (resolve_certificate).
create or replace function gk_private.certificates_unresolved(ids uuid[], error text, claim uuid)
returns void
language sql volatile
as $$
  update gk_public.certificates c
     set unresolved = true, last_error = left(error, 2000), next_attempt_at = null, claim_id = null, claim_expires_at = null
   where c.id = any(ids) and c.status = 'revoking' and c.claim_id = certificates_unresolved.claim;
$$;

-- The operator's answer for an unresolved certificate, after looking at the CA: the serial it
-- issued under this id, or null when it issued nothing.
-- - revoking: the serial is revoked like any other; null → revoked, never_issued.
-- - issuing (a retry held back): what the CA issued is revoked (a row of its own, reason
--   superseded: its key, if the CA made it, died with the lost attempt) and the certificate is
--   issued anew; null → issued anew. Either way no earlier attempt is left unaccounted for.
-- A serial another certificate row already holds is refused: revoking it would revoke that one.
create or replace function gk_public.resolve_certificate(id uuid, serial text default null)
returns gk_public.certificates
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  v gk_public.certificates;
begin
  if serial is not null and serial !~ '^[0-9a-f]+$' then
    raise exception 'serial must be lower-case hexadecimal (got %)', serial using errcode = '22023';
  end if;
  select * into v from gk_public.certificates c where c.id = resolve_certificate.id for update;
  if not found then
    raise exception 'certificate % not found', id using errcode = 'P0002';
  end if;
  if not v.unresolved then
    raise exception 'certificate % is not unresolved', id using errcode = '55000';
  end if;
  if serial is not null and exists (select 1 from gk_public.certificates c where c.serial = resolve_certificate.serial) then
    raise exception 'serial % already belongs to a certificate row', serial using errcode = '23505';
  end if;
  if v.status = 'issuing' then
    if serial is not null then
      perform gk_private.certificate_orphans(v.id, array[null::text], array[serial]);
    end if;
    update gk_public.certificates c
       set unresolved = false, last_error = null, issue_attempted_at = null, next_attempt_at = now(),
           retry_requested_at = clock_timestamp()
     where c.id = v.id returning * into v;
  elsif serial is null then
    update gk_public.certificates c
       set status = 'revoked', revoked_at = now(), never_issued = true, unresolved = false, last_error = null
     where c.id = v.id returning * into v;
  else
    update gk_public.certificates c
       set serial = resolve_certificate.serial, unresolved = false, last_error = null, next_attempt_at = now(),
           retry_requested_at = clock_timestamp()
     where c.id = v.id returning * into v;
  end if;
  return v;
end;
$$;
comment on function gk_public.resolve_certificate is 'For an unresolved certificate (its CA cannot be asked what it issued): the serial the CA issued under this certificate''s id, or null when it issued nothing. A revoking one is then revoked; an issuing one has what the CA issued revoked and is issued anew.';
