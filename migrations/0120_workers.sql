-- Up Migration
-- Build workers and the identities of the processes that talk to each other over mutual TLS:
-- a worker's agent holds a certificate owned by its workers row, Groundskeeper itself holds one
-- owned by its controllers row. Both go through the certificate lifecycle (sql/300): deleting the
-- owner sets the reference NULL, which sends the certificate to revocation at the CA.
-- Stored logic: sql/500_workers.sql.

create table gk_public.workers (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  -- landed: enrolled or landed, not serving (no address); running/landing/retiring: the agent
  -- heartbeats; stalled: its heartbeat expired (nothing on it is collected until it is back).
  state text not null default 'landed' check (state in ('running', 'stalled', 'landing', 'landed', 'retiring')),
  -- Where Groundskeeper reaches the agent (https://host:port); set when it registers.
  address text check (address ~ '^https://[A-Za-z0-9.:\[\]-]{1,255}:[0-9]{1,5}$'),
  heartbeat_ttl interval not null default interval '60 seconds'
    check (heartbeat_ttl between interval '2 seconds' and interval '1 hour'),
  last_heartbeat_at timestamptz,
  -- last_heartbeat_at + heartbeat_ttl: past it, a running worker becomes stalled.
  expires_at timestamptz,
  stalled_since timestamptz,
  agent_version text check (length(agent_version) <= 100),
  -- What the agent said in its last heartbeat: volumes under live/, entries still under dead/.
  live_volumes int check (live_volumes >= 0),
  dead_volumes int check (dead_volumes >= 0),
  -- The collector's exclusive hold on this worker (report + destroys), so two collectors never
  -- double the load on one agent; a killed collector's hold simply runs out.
  collector_lease_until timestamptz,
  last_report_at timestamptz,
  enrolled_at timestamptz not null default now(),
  state_changed_at timestamptz not null default now(),
  constraint workers_serving_has_address check (state not in ('running', 'landing', 'retiring') or (address is not null and expires_at is not null)),
  constraint workers_stalled_since check ((state = 'stalled') = (stalled_since is not null))
);
-- Behind the stall sweep.
create index workers_expires_at_idx on gk_public.workers (expires_at) where state = 'running';
comment on table gk_public.workers is 'Build workers: each runs a Groundskeeper agent that owns the volumes on its disk. Deleting (pruning) one cascades to its containers and volumes and revokes its certificate.';

-- Groundskeeper's own identity towards agents (and any other peer): one row per deployment. Its
-- certificates (client and server) are owned by it; every Groundskeeper process shares the key,
-- sealed under the master key in gk_private.controller_keys.
create table gk_public.controllers (
  id uuid primary key default gen_random_uuid(),
  name text not null unique default 'groundskeeper' check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  created_at timestamptz not null default now()
);
comment on table gk_public.controllers is 'Groundskeeper''s own identity for mutual TLS with agents. Deleting it revokes its certificates (a new one is made on demand).';

create table gk_private.controller_keys (
  certificate_id uuid primary key references gk_public.certificates (id) on delete cascade,
  -- PKCS#8 of the private key, SecretBox-sealed with context 'controller-key:<certificate id>'.
  sealed_key text not null check (sealed_key like 'v1:%'),
  created_at timestamptz not null default now()
);
comment on table gk_private.controller_keys is 'Private keys of the controller''s certificates, sealed under the master key.';

-- Certificates gain two owners. Platform identities are not tenant-owned: owner_team_id is NULL
-- for them (and only for them).
alter table gk_public.certificates
  add column worker_id uuid references gk_public.workers (id) on delete set null,
  add column controller_id uuid references gk_public.controllers (id) on delete set null,
  alter column owner_team_id drop not null,
  drop constraint certificates_profile_check,
  add constraint certificates_profile_check check (profile in ('robot', 'client_auth', 'provisioning', 'worker', 'controller')),
  drop constraint certificates_live_has_owner,
  add constraint certificates_live_has_owner check (
    status not in ('issuing', 'issued')
    or num_nonnulls(robot_id, provisioning_credential_id, team_id, worker_id, controller_id) = 1),
  drop constraint certificates_one_owner,
  add constraint certificates_one_owner check (num_nonnulls(robot_id, provisioning_credential_id, team_id, worker_id, controller_id) <= 1),
  add constraint certificates_platform_not_team check ((owner_team_id is null) = (profile in ('worker', 'controller'))),
  -- A platform identity's holder keeps its own key: the CA never generates (and parks) one.
  add constraint certificates_platform_own_key check (profile not in ('worker', 'controller') or public_key_pem is not null or csr_pem is not null),
  add constraint certificates_worker_profile check (worker_id is null or profile = 'worker'),
  add constraint certificates_controller_profile check (controller_id is null or profile = 'controller');
create index certificates_worker_id_idx on gk_public.certificates (worker_id);
create index certificates_controller_id_idx on gk_public.certificates (controller_id);
-- Peers are authenticated by the serial of the certificate they present.
create index certificates_peer_serial_idx on gk_public.certificates (serial) where profile in ('worker', 'controller');

-- Down Migration
-- The stored logic of this migration's tables (sql/500_workers.sql) goes with them.
drop trigger if exists _520_supersede_worker_certificates on gk_public.certificates;
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private')
              and (p.proname ~ '^(worker|workers|controller)_' or p.proname ~ '^(enroll|land|retire|prune)_worker$'
                   or p.proname in ('certificate_peer', 'tg_certificates__supersede_worker_certificates'))
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
drop index if exists gk_public.certificates_peer_serial_idx;
delete from gk_public.certificates where profile in ('worker', 'controller');
alter table gk_public.certificates
  drop constraint certificates_controller_profile,
  drop constraint certificates_worker_profile,
  drop constraint certificates_platform_own_key,
  drop constraint certificates_platform_not_team,
  drop constraint certificates_one_owner,
  add constraint certificates_one_owner check (num_nonnulls(robot_id, provisioning_credential_id, team_id) <= 1),
  drop constraint certificates_live_has_owner,
  add constraint certificates_live_has_owner check (
    status not in ('issuing', 'issued') or num_nonnulls(robot_id, provisioning_credential_id, team_id) = 1),
  drop constraint certificates_profile_check,
  add constraint certificates_profile_check check (profile in ('robot', 'client_auth', 'provisioning')),
  alter column owner_team_id set not null,
  -- CASCADE: the lifecycle trigger of sql/300 names these columns; the previous release's
  -- sql/300 differs by checksum, so its migrate re-creates the trigger.
  drop column controller_id cascade,
  drop column worker_id cascade;
drop table gk_private.controller_keys cascade;
drop table gk_public.controllers cascade;
drop table gk_public.workers cascade;
