-- Up Migration
-- A retried issuance on a CA that cannot be asked what it issued under our id (cfssl) does not
-- sign again blindly: the certificate stays 'issuing' and turns `unresolved` until an operator
-- answers (resolve_certificate, sql/302_certificate_claims.sql). So unresolved now holds for both
-- pending states.
alter table gk_public.certificates
  drop constraint certificates_unresolved_revoking,
  add constraint certificates_unresolved_pending check (not unresolved or status in ('issuing', 'revoking'));
comment on column gk_public.certificates.unresolved is 'An issuance request may have reached the CA, and the CA cannot tell what it issued for this id: an operator must check the CA and answer with resolve_certificate (docs/certificates.md). Issuing: not retried by itself (a retry could sign twice). Revoking: not concluded never_issued.';

-- Down Migration
-- The certificate bin view (sql/310) reads unresolved issuances; it and the bin view over it are
-- re-created by sql/ on the next migrate.
drop view if exists gk_private.bin__certificate cascade;
update gk_public.certificates set unresolved = false where unresolved and status <> 'revoking';
alter table gk_public.certificates
  drop constraint certificates_unresolved_pending,
  add constraint certificates_unresolved_revoking check (not unresolved or status = 'revoking');
