-- Up Migration
-- Private keys the CA generated for certificates requested without a key (provisioning
-- credentials, request_certificate without public key or CSR), parked sealed (SecretBox,
-- AES-256-GCM under the master key, which never enters the database) until an admin downloads
-- them once. gk_private: never exposed through GraphQL. Deleted on download, and when the
-- certificate leaves 'issued' for revoking/revoked/expired (sql/301_certificate_keys.sql).
create table gk_private.certificate_private_keys (
  certificate_id uuid primary key references gk_public.certificates (id) on delete cascade,
  owner_team_id uuid not null,
  sealed_key text not null check (sealed_key like 'v1:%'),
  created_at timestamptz not null default now()
);
create index certificate_private_keys_owner_team_id_idx on gk_private.certificate_private_keys (owner_team_id);
comment on table gk_private.certificate_private_keys is 'CA-generated private keys, sealed, downloadable once by an admin.';

-- Down Migration
drop table gk_private.certificate_private_keys cascade;
