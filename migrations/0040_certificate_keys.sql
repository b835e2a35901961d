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
-- The stored logic on top (sql/301) does not depend on the table in the catalog: drop it too.
drop trigger if exists _510_drop_parked_keys on gk_public.certificates;
drop function if exists gk_private.tg_certificates__drop_parked_keys();
drop function if exists gk_private.certificate_issued_with_key(uuid, text, text, text, text);
drop table gk_private.certificate_private_keys cascade;
