-- Up Migration
-- Certificate lifecycle (issue 3): provisioning credentials, certificates, the purge table.
-- Triggers, sweeps, views and grants live in sql/300_*..399_* (re-applied stored logic).

create table gk_public.provisioning_credentials (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  status text not null default 'issuing' check (status in ('issuing', 'issued', 'revoked', 'expired')),
  -- The not_after requested for both of its certificates; the credential expires when it passes.
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  expired_at timestamptz,
  check ((status = 'revoked') = (revoked_at is not null)),
  check ((status = 'expired') = (expired_at is not null))
);
create index provisioning_credentials_team_id_idx on gk_public.provisioning_credentials (team_id);
-- Behind the credential expiry sweep.
create index provisioning_credentials_live_expires_idx on gk_public.provisioning_credentials (expires_at)
  where status in ('issuing', 'issued');
comment on table gk_public.provisioning_credentials is 'A pair of certificates (client_auth, provisioning) handed to a team for enrolling robots. Revoking it revokes both at the CA.';

create table gk_public.certificates (
  id uuid primary key default gen_random_uuid(),
  -- Tenant column, deliberately without a FK: it survives the team so revocation and the bin
  -- still know whose certificate it was (Airbotics broke here when team_id was nulled).
  owner_team_id uuid not null,
  -- Owner refs: exactly one is set while the certificate lives. ON DELETE SET NULL keeps the row
  -- until the CA has revoked it; a trigger moves an ownerless certificate to 'revoking'.
  robot_id uuid references gk_public.robots (id) on delete set null,
  provisioning_credential_id uuid references gk_public.provisioning_credentials (id) on delete set null,
  team_id uuid references gk_public.teams (id) on delete set null,
  profile text not null check (profile in ('robot', 'client_auth', 'provisioning')),
  status text not null default 'issuing'
    check (status in ('issuing', 'issued', 'revoking', 'revoked', 'expired', 'failed')),
  -- The holder's key: an SPKI public key (local CA) or a PKCS#10 CSR (any CA); neither → the CA makes one.
  public_key_pem text,
  csr_pem text,
  ca_ref text,
  -- Lower-case hex, NULL until the CA tells us (asynchronous CAs: only once fetched).
  serial text check (serial ~ '^[0-9a-f]+$'),
  pem text,
  not_after timestamptz not null,
  created_at timestamptz not null default now(),
  issued_at timestamptz,
  downloaded_at timestamptz,
  revoke_requested_at timestamptz,
  revoked_at timestamptz,
  revocation_reason text check (revocation_reason in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation')),
  -- Revoked before the CA ever issued it: nothing to put on a CRL.
  never_issued boolean not null default false,
  -- Pending work (issuing, revoking): attempts, last error, and when it is due again.
  attempts int not null default 0 check (attempts >= 0),
  last_error text,
  next_attempt_at timestamptz,
  -- Set by the admin API (download, retry); a trigger enqueues the matching task.
  fetch_requested_at timestamptz,
  retry_requested_at timestamptz,
  -- The invariant: a certificate with no owner is never live.
  constraint certificates_live_has_owner check (
    status not in ('issuing', 'issued') or num_nonnulls(robot_id, provisioning_credential_id, team_id) = 1
  ),
  constraint certificates_one_owner check (num_nonnulls(robot_id, provisioning_credential_id, team_id) <= 1),
  constraint certificates_issued_has_ref check (status not in ('issued', 'expired') or ca_ref is not null),
  constraint certificates_revoked_at check ((status = 'revoked') = (revoked_at is not null)),
  constraint certificates_never_issued check (not never_issued or (status = 'revoked' and serial is null)),
  constraint certificates_pem_has_serial check (pem is null or serial is not null)
);
-- FK actions (SET NULL on robot/credential/team delete) look certificates up by owner. Full
-- indexes (not partial): the API only offers filters and reverse relations over full ones.
create index certificates_robot_id_idx on gk_public.certificates (robot_id);
create index certificates_provisioning_credential_id_idx on gk_public.certificates (provisioning_credential_id);
create index certificates_team_id_idx on gk_public.certificates (team_id);
create index certificates_owner_team_id_idx on gk_public.certificates (owner_team_id);
-- Behind the expiry sweep.
create index certificates_status_not_after_idx on gk_public.certificates (status, not_after);
-- Behind the bin and the reconciler: pending work by due time.
create index certificates_pending_due_idx on gk_public.certificates (status, next_attempt_at)
  where status in ('issuing', 'revoking');
comment on table gk_public.certificates is 'Certificates issued at the CA. A row outlives its owner until the CA has revoked it.';
comment on column gk_public.certificates.owner_team_id is 'The team the certificate was issued for; kept after the team is deleted.';
comment on column gk_public.certificates.ca_ref is 'The CA''s handle for the certificate (fetch it by this to learn the serial).';

-- Deletions whose row is gone (a deleted team's blob prefix; later volumes, exports).
create table gk_public.purge_items (
  id bigint generated always as identity primary key,
  kind text not null check (kind in ('blob_prefix')),
  ref text not null check (length(ref) between 1 and 1024),
  team_id uuid,
  enqueued_at timestamptz not null default now(),
  attempts int not null default 0 check (attempts >= 0),
  last_error text,
  next_attempt_at timestamptz not null default now(),
  completed_at timestamptz,
  -- Resumable progress: the last key deleted and how many so far.
  progress_after text,
  progress_count bigint not null default 0 check (progress_count >= 0),
  retry_requested_at timestamptz
);
create unique index purge_items_pending_kind_ref_idx on gk_public.purge_items (kind, ref) where completed_at is null;
create index purge_items_pending_due_idx on gk_public.purge_items (next_attempt_at) where completed_at is null;
create index purge_items_completed_at_idx on gk_public.purge_items (completed_at) where completed_at is not null;
comment on table gk_public.purge_items is 'Deletions of things that have no row any more (a deleted team''s blob prefix), with progress and last error.';

-- Retention targets: robot manifests and ECU telemetry (partitioned by day).
create table gk_public.robot_manifests (
  id bigint generated always as identity primary key,
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  robot_id uuid not null references gk_public.robots (id) on delete cascade,
  received_at timestamptz not null default now(),
  valid boolean not null,
  body jsonb not null
);
create index robot_manifests_robot_id_idx on gk_public.robot_manifests (robot_id, received_at desc);
create index robot_manifests_team_id_idx on gk_public.robot_manifests (team_id);
create index robot_manifests_received_at_idx on gk_public.robot_manifests (received_at);
comment on table gk_public.robot_manifests is 'Signed manifests reported by robots; pruned by the retention sweep.';

create table gk_public.ecu_telemetry (
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  robot_id uuid not null references gk_public.robots (id) on delete cascade,
  ecu_serial text not null,
  event_type text not null,
  device_time timestamptz,
  recorded_at timestamptz not null default now(),
  body jsonb not null default '{}'::jsonb
) partition by range (recorded_at);
create index ecu_telemetry_robot_id_idx on gk_public.ecu_telemetry (robot_id, recorded_at);
create index ecu_telemetry_team_id_idx on gk_public.ecu_telemetry (team_id);
-- Catches rows outside every daily partition (clock skew, partitions not yet created).
-- Partitions live in gk_private so the API shows only the parent table.
create table gk_private.ecu_telemetry_default partition of gk_public.ecu_telemetry default;
comment on table gk_public.ecu_telemetry is 'ECU events from robots, partitioned by day; retention drops whole partitions.';

insert into gk_public.retention_policies (kind, retention, description) values
  ('robot_manifests', interval '30 days', 'Robot manifests older than this are deleted.'),
  ('ecu_telemetry', interval '7 days', 'ECU telemetry partitions older than this are dropped.'),
  ('purge_items', interval '30 days', 'Completed purge items (history of the bin) older than this are deleted.')
on conflict (kind) do nothing;

-- Down Migration
-- CASCADE takes the stored logic built on these tables with them (views, functions returning
-- their row types, triggers); the trigger on teams is dropped explicitly.
drop trigger if exists _500_purge_blobs on gk_public.teams;
delete from gk_public.retention_policies where kind in ('robot_manifests', 'ecu_telemetry', 'purge_items');
drop table gk_public.ecu_telemetry cascade;
drop table gk_public.robot_manifests cascade;
drop table gk_public.purge_items cascade;
drop table gk_public.certificates cascade;
drop table gk_public.provisioning_credentials cascade;
