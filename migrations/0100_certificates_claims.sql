-- Up Migration
-- Certificates are claimed, not locked, across a CA call: a task commits a claim (claim_id,
-- claim_expires_at) before calling the CA and records the outcome conditionally on it, so no
-- platform statement (a robot or team DELETE, a credential revoke) ever waits on the network.
-- issue_attempted_at says an issuance request for this certificate may have reached the CA: the
-- revoke path then asks the CA what it issued under the certificate's id (the idempotency key)
-- before it may conclude never_issued; where the CA cannot answer, the row stays `unresolved`.
-- not_before / not_after are taken from the signed certificate (sql/300_certificates.sql).
alter table gk_public.certificates
  add column claim_id uuid,
  add column claim_expires_at timestamptz,
  add column issue_attempted_at timestamptz,
  add column not_before timestamptz,
  add column unresolved boolean not null default false,
  add constraint certificates_claim_pair check ((claim_id is null) = (claim_expires_at is null)),
  add constraint certificates_unresolved_revoking check (not unresolved or status = 'revoking');
comment on column gk_public.certificates.claim_id is 'The task attempt that holds this certificate across a CA call (until claim_expires_at).';
comment on column gk_public.certificates.issue_attempted_at is 'When an issuance request for this certificate was first sent to the CA (it may have been signed even if no answer came back).';
comment on column gk_public.certificates.unresolved is 'The owner is gone, an issuance may have reached the CA and the CA cannot tell what it issued for this id: an operator must check the CA (docs/certificates.md).';

-- The local CA remembers under which request key (our certificate id) it signed, so it can be
-- asked "what did you issue for id X" after an answer was lost.
alter table gk_private.local_ca_certificates add column request_key text check (length(request_key) <= 200);
create index local_ca_certificates_request_key_idx on gk_private.local_ca_certificates (authority, request_key)
  where request_key is not null;

-- Down Migration
drop index gk_private.local_ca_certificates_request_key_idx;
alter table gk_private.local_ca_certificates drop column request_key;
alter table gk_public.certificates
  drop constraint certificates_unresolved_revoking,
  drop constraint certificates_claim_pair,
  drop column unresolved,
  drop column not_before,
  drop column issue_attempted_at,
  drop column claim_expires_at,
  drop column claim_id;
