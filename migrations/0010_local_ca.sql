-- Up Migration
-- The built-in local CA keeps all of its state here, so any number of worker processes can share
-- one CA (they all sign with the same key and see the same issued/revoked certificates).
-- Not tenant-owned: the CA knows certificates, not teams (the certificates table of the
-- lifecycle carries team_id and points here through ca_ref).

create table gk_private.local_ca_authorities (
  name text primary key check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  certificate_pem text not null,
  -- PKCS#8 of the CA key, sealed with the master key (SecretBox, context 'local-ca:<name>').
  private_key_sealed text not null,
  -- Bumped by every revocation; a CRL that covers an older value is stale.
  revocation_seq bigint not null default 0,
  crl_number bigint not null default 0,
  crl_revision bigint not null default -1,
  crl_pem text,
  crl_this_update timestamptz,
  crl_next_update timestamptz,
  created_at timestamptz not null default now(),
  check ((crl_pem is null) = (crl_this_update is null) and (crl_pem is null) = (crl_next_update is null))
);
comment on table gk_private.local_ca_authorities is 'Local CA: key pair (private key sealed), certificate and the cached CRL.';

create table gk_private.local_ca_certificates (
  -- The ca_ref handed out by issue().
  id uuid primary key default gen_random_uuid(),
  authority text not null references gk_private.local_ca_authorities (name) on delete restrict,
  common_name text not null,
  profile text not null,
  public_key_pem text not null,
  not_after timestamptz not null,
  status text not null default 'pending' check (status in ('pending', 'issued', 'revoked', 'failed')),
  -- Lower-case hex without leading zeros; null until signed (deferred mode).
  serial text check (serial ~ '^[1-9a-f][0-9a-f]*$'),
  pem text,
  requested_at timestamptz not null default now(),
  -- Deferred mode: not signed before this time.
  issue_after timestamptz,
  issued_at timestamptz,
  revoked_at timestamptz,
  reason text check (reason in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation')),
  failure text,
  check ((status in ('pending', 'failed')) = (serial is null)),
  check ((serial is null) = (pem is null) and (serial is null) = (issued_at is null)),
  check ((status = 'revoked') = (revoked_at is not null) and (revoked_at is null) = (reason is null)),
  check ((status = 'failed') = (failure is not null)),
  unique (authority, serial)
);
-- The CRL lists the revoked, not yet expired certificates of an authority.
create index local_ca_certificates_revoked_idx on gk_private.local_ca_certificates (authority, not_after)
  where status = 'revoked';
comment on table gk_private.local_ca_certificates is 'Certificates issued (or pending issuance, deferred mode) by the local CA.';

-- Down Migration
drop table gk_private.local_ca_certificates;
drop table gk_private.local_ca_authorities;
