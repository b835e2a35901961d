-- The database schema of Groundskeeper, generated from the catalog of a migrated database by
-- `npm run schema:export` (src/db/schema-dump.ts) on PostgreSQL 17. Do not edit: change
-- migrations/ or sql/ and regenerate. For review, not for restoring (objects are grouped by
-- table, not in load order). Range partitions made at run time (ecu_telemetry_pYYYYMMDD) and
-- graphile_worker are left out.

-- ===============================================================================================
-- schema gk_public

create schema gk_public;
grant usage on schema gk_public to gk_admin;
grant usage on schema gk_public to gk_peer;
grant usage on schema gk_public to gk_viewer;

create type gk_public.export_resource_type as enum ('image');

create table gk_public.activation_errors (
  id bigint generated always as identity not null,
  activation_id bigint not null,
  item text not null,
  error text not null,
  at timestamp with time zone default now() not null,
  constraint activation_errors_pkey PRIMARY KEY (id),
  constraint activation_errors_activation_id_fkey FOREIGN KEY (activation_id) REFERENCES gk_public.activations(id) ON DELETE CASCADE
);
CREATE INDEX activation_errors_activation_idx ON gk_public.activation_errors USING btree (activation_id);
comment on table gk_public.activation_errors is 'Per-item errors of an activation: the item that failed and why.';
grant select on gk_public.activation_errors to gk_admin;
grant select on gk_public.activation_errors to gk_viewer;

create table gk_public.activations (
  id bigint generated always as identity not null,
  task text not null,
  started_at timestamp with time zone default now() not null,
  finished_at timestamp with time zone,
  status text default 'running'::text not null,
  counts jsonb default '{}'::jsonb not null,
  error text,
  details jsonb default '{}'::jsonb not null,
  worker_id text,
  constraint activations_pkey PRIMARY KEY (id),
  constraint activations_check CHECK ((status = 'running'::text) = (finished_at IS NULL)),
  constraint activations_status_check CHECK (status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text])),
  constraint activations_worker_id_check CHECK (length(worker_id) <= 200)
);
CREATE INDEX activations_running_worker_idx ON gk_public.activations USING btree (worker_id) WHERE (status = 'running'::text);
CREATE INDEX activations_task_started_idx ON gk_public.activations USING btree (task, started_at DESC);
comment on table gk_public.activations is 'History of periodic reconciler runs (expiry sweep, retention, resigner, GC...), with per-activation counts.';
comment on column gk_public.activations.details is 'The reconciler''s typed status: counts, lists (errors, items acted on) and the limits it ran with.';
comment on column gk_public.activations.worker_id is 'The graphile-worker pool that ran it (graphile_worker.jobs.locked_by).';
grant select on gk_public.activations to gk_admin;
grant select on gk_public.activations to gk_viewer;

create table gk_public.audit_events (
  id bigint generated always as identity not null,
  at timestamp with time zone default now() not null,
  token_id uuid,
  token_name text not null,
  role text not null,
  operation text not null,
  operation_name text,
  fields text[] default '{}'::text[] not null,
  arguments jsonb default '{}'::jsonb not null,
  outcome text not null,
  error text,
  duration_ms integer not null,
  constraint audit_events_pkey PRIMARY KEY (id),
  constraint audit_events_token_id_fkey FOREIGN KEY (token_id) REFERENCES gk_private.api_tokens(id) ON DELETE SET NULL,
  constraint audit_events_arguments_check CHECK (octet_length(arguments::text) <= 16384),
  constraint audit_events_duration_ms_check CHECK (duration_ms >= 0),
  constraint audit_events_error_check CHECK (length(error) <= 2000),
  constraint audit_events_fields_check CHECK (cardinality(fields) <= 64),
  constraint audit_events_operation_check CHECK (length(operation) >= 1 AND length(operation) <= 200),
  constraint audit_events_operation_name_check CHECK (length(operation_name) <= 200),
  constraint audit_events_outcome_check CHECK (outcome = ANY (ARRAY['succeeded'::text, 'failed'::text])),
  constraint audit_events_role_check CHECK (role = ANY (ARRAY['gk_admin'::text, 'gk_viewer'::text])),
  constraint audit_events_token_name_check CHECK (length(token_name) >= 1 AND length(token_name) <= 200)
);
CREATE INDEX audit_events_at_idx ON gk_public.audit_events USING btree (at);
CREATE INDEX audit_events_token_idx ON gk_public.audit_events USING btree (token_id, at);
comment on table gk_public.audit_events is '@behavior -insert -update -delete
Every mutation made through the admin API: which token, which fields with which arguments, when, and the outcome. Plain-SQL changes by the platform''s own servers are not here.';
grant select on gk_public.audit_events to gk_admin;

create table gk_public.base_resource_types (
  id bigint generated always as identity not null,
  name text not null,
  constraint base_resource_types_pkey PRIMARY KEY (id),
  constraint base_resource_types_name_key UNIQUE (name),
  constraint base_resource_types_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text)
);
comment on table gk_public.base_resource_types is '@behavior -insert -update -delete
Resource types workers bring built in.';
grant select on gk_public.base_resource_types to gk_admin;
grant select on gk_public.base_resource_types to gk_viewer;

create table gk_public.bin_kinds (
  kind text not null,
  area text not null,
  description text default ''::text not null,
  purge_task text,
  registered_at timestamp with time zone default now() not null,
  constraint bin_kinds_pkey PRIMARY KEY (kind),
  constraint bin_kinds_area_check CHECK (area ~ '^[a-z][a-z0-9]{0,30}$'::text),
  constraint bin_kinds_description_check CHECK (length(description) <= 500),
  constraint bin_kinds_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]{0,40}$'::text),
  constraint bin_kinds_purge_task_check CHECK (purge_task ~ '^[a-z]+__[a-z_]+$'::text)
);
comment on table gk_public.bin_kinds is '@behavior -insert -update -delete
The kinds of pending deletions the bin lists, and the area that owns each.';
grant select on gk_public.bin_kinds to gk_admin;
grant select on gk_public.bin_kinds to gk_viewer;

create table gk_public.builds (
  id bigint generated always as identity not null,
  team_id uuid not null,
  name text default ''::text not null,
  status text default 'running'::text not null,
  created_at timestamp with time zone default now() not null,
  completed_at timestamp with time zone,
  constraint builds_pkey PRIMARY KEY (id),
  constraint builds_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint builds_check CHECK ((status = 'running'::text) = (completed_at IS NULL)),
  constraint builds_name_check CHECK (length(name) <= 200),
  constraint builds_status_check CHECK (status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'errored'::text, 'aborted'::text]))
);
CREATE INDEX builds_running_idx ON gk_public.builds USING btree (id) WHERE (status = 'running'::text);
CREATE INDEX builds_team_id_idx ON gk_public.builds USING btree (team_id);
comment on table gk_public.builds is '@behavior -insert -update -delete
A build of the platform; its containers and cache uses hang off it.';
grant select on gk_public.builds to gk_admin;
grant select on gk_public.builds to gk_viewer;

create table gk_public.certificates (
  id uuid default gen_random_uuid() not null,
  owner_team_id uuid,
  robot_id uuid,
  provisioning_credential_id uuid,
  team_id uuid,
  profile text not null,
  status text default 'issuing'::text not null,
  public_key_pem text,
  csr_pem text,
  ca_ref text,
  serial text,
  pem text,
  not_after timestamp with time zone not null,
  created_at timestamp with time zone default now() not null,
  issued_at timestamp with time zone,
  downloaded_at timestamp with time zone,
  revoke_requested_at timestamp with time zone,
  revoked_at timestamp with time zone,
  revocation_reason text,
  never_issued boolean default false not null,
  attempts integer default 0 not null,
  last_error text,
  next_attempt_at timestamp with time zone,
  fetch_requested_at timestamp with time zone,
  retry_requested_at timestamp with time zone,
  claim_id uuid,
  claim_expires_at timestamp with time zone,
  issue_attempted_at timestamp with time zone,
  not_before timestamp with time zone,
  unresolved boolean default false not null,
  worker_id uuid,
  controller_id uuid,
  subject jsonb,
  subject_generation bigint,
  replaces_certificate_id uuid,
  constraint certificates_pkey PRIMARY KEY (id),
  constraint certificates_controller_id_fkey FOREIGN KEY (controller_id) REFERENCES gk_public.controllers(id) ON DELETE SET NULL,
  constraint certificates_provisioning_credential_id_fkey FOREIGN KEY (provisioning_credential_id) REFERENCES gk_public.provisioning_credentials(id) ON DELETE SET NULL,
  constraint certificates_replaces_certificate_id_fkey FOREIGN KEY (replaces_certificate_id) REFERENCES gk_public.certificates(id) ON DELETE SET NULL,
  constraint certificates_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robots(id) ON DELETE SET NULL,
  constraint certificates_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE SET NULL,
  constraint certificates_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE SET NULL,
  constraint certificates_attempts_check CHECK (attempts >= 0),
  constraint certificates_claim_pair CHECK ((claim_id IS NULL) = (claim_expires_at IS NULL)),
  constraint certificates_controller_profile CHECK (controller_id IS NULL OR profile = 'controller'::text),
  constraint certificates_issued_has_ref CHECK ((status <> ALL (ARRAY['issued'::text, 'expired'::text])) OR ca_ref IS NOT NULL),
  constraint certificates_live_has_owner CHECK ((status <> ALL (ARRAY['issuing'::text, 'issued'::text])) OR num_nonnulls(robot_id, provisioning_credential_id, team_id, worker_id, controller_id) = 1),
  constraint certificates_never_issued CHECK (NOT never_issued OR status = 'revoked'::text AND serial IS NULL),
  constraint certificates_one_owner CHECK (num_nonnulls(robot_id, provisioning_credential_id, team_id, worker_id, controller_id) <= 1),
  constraint certificates_pem_has_serial CHECK (pem IS NULL OR serial IS NOT NULL),
  constraint certificates_platform_not_team CHECK ((owner_team_id IS NULL) = (profile = ANY (ARRAY['worker'::text, 'controller'::text]))),
  constraint certificates_platform_own_key CHECK ((profile <> ALL (ARRAY['worker'::text, 'controller'::text])) OR public_key_pem IS NOT NULL OR csr_pem IS NOT NULL),
  constraint certificates_profile_check CHECK (profile = ANY (ARRAY['robot'::text, 'client_auth'::text, 'provisioning'::text, 'worker'::text, 'controller'::text])),
  constraint certificates_replaces_other CHECK (replaces_certificate_id <> id),
  constraint certificates_revocation_reason_check CHECK (revocation_reason = ANY (ARRAY['unspecified'::text, 'keyCompromise'::text, 'superseded'::text, 'cessationOfOperation'::text])),
  constraint certificates_revoked_at CHECK ((status = 'revoked'::text) = (revoked_at IS NOT NULL)),
  constraint certificates_serial_check CHECK (serial ~ '^[0-9a-f]+$'::text),
  constraint certificates_status_check CHECK (status = ANY (ARRAY['issuing'::text, 'issued'::text, 'revoking'::text, 'revoked'::text, 'expired'::text, 'failed'::text])),
  constraint certificates_subject_check CHECK (subject IS NULL OR jsonb_typeof(subject) = 'object'::text),
  constraint certificates_subject_generation_check CHECK (subject_generation >= 0),
  constraint certificates_unresolved_pending CHECK (NOT unresolved OR (status = ANY (ARRAY['issuing'::text, 'revoking'::text]))),
  constraint certificates_worker_profile CHECK (worker_id IS NULL OR profile = 'worker'::text)
);
CREATE INDEX certificates_controller_id_idx ON gk_public.certificates USING btree (controller_id);
CREATE UNIQUE INDEX certificates_one_replacement_idx ON gk_public.certificates USING btree (replaces_certificate_id) WHERE ((replaces_certificate_id IS NOT NULL) AND (status = ANY (ARRAY['issuing'::text, 'issued'::text])));
CREATE INDEX certificates_owner_team_id_idx ON gk_public.certificates USING btree (owner_team_id);
CREATE INDEX certificates_peer_serial_idx ON gk_public.certificates USING btree (serial) WHERE (profile = ANY (ARRAY['worker'::text, 'controller'::text]));
CREATE INDEX certificates_pending_due_idx ON gk_public.certificates USING btree (status, next_attempt_at) WHERE (status = ANY (ARRAY['issuing'::text, 'revoking'::text]));
CREATE INDEX certificates_provisioning_credential_id_idx ON gk_public.certificates USING btree (provisioning_credential_id);
CREATE INDEX certificates_replaces_certificate_id_idx ON gk_public.certificates USING btree (replaces_certificate_id);
CREATE INDEX certificates_robot_id_idx ON gk_public.certificates USING btree (robot_id);
CREATE INDEX certificates_robot_serial_idx ON gk_public.certificates USING btree (serial) WHERE (profile = 'robot'::text);
CREATE INDEX certificates_status_not_after_idx ON gk_public.certificates USING btree (status, not_after);
CREATE INDEX certificates_team_id_idx ON gk_public.certificates USING btree (team_id);
CREATE INDEX certificates_worker_id_idx ON gk_public.certificates USING btree (worker_id);
CREATE TRIGGER _100_lifecycle BEFORE INSERT OR UPDATE OF status, robot_id, provisioning_credential_id, team_id, worker_id, controller_id ON gk_public.certificates FOR EACH ROW EXECUTE FUNCTION gk_private.tg_certificates__lifecycle();
CREATE TRIGGER _110_robot_subject BEFORE INSERT ON gk_public.certificates FOR EACH ROW EXECUTE FUNCTION gk_private.tg_certificates__robot_subject();
CREATE TRIGGER _500_enqueue_issuance AFTER INSERT ON gk_public.certificates REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_certificates__enqueue_issuance();
CREATE TRIGGER _500_enqueue_revocations AFTER UPDATE ON gk_public.certificates REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_certificates__enqueue_revocations();
CREATE TRIGGER _510_drop_parked_keys AFTER UPDATE ON gk_public.certificates REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_certificates__drop_parked_keys();
CREATE TRIGGER _520_supersede_worker_certificates AFTER INSERT ON gk_public.certificates REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_certificates__supersede_worker_certificates();
CREATE TRIGGER _530_robot_regenerated AFTER UPDATE ON gk_public.certificates REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_certificates__robot_regenerated();
comment on table gk_public.certificates is '@behavior -insert -update -delete
Certificates issued at the CA. A row outlives its owner until the CA has revoked it.';
comment on column gk_public.certificates.owner_team_id is 'The team the certificate was issued for; kept after the team is deleted.';
comment on column gk_public.certificates.ca_ref is 'The CA''s handle for the certificate (fetch it by this to learn the serial).';
comment on column gk_public.certificates.claim_id is 'The task attempt that holds this certificate across a CA call (until claim_expires_at).';
comment on column gk_public.certificates.issue_attempted_at is 'When an issuance request for this certificate was first sent to the CA (it may have been signed even if no answer came back).';
comment on column gk_public.certificates.unresolved is 'An issuance request may have reached the CA, and the CA cannot tell what it issued for this id: an operator must check the CA and answer with resolve_certificate (docs/certificates.md). Issuing: not retried by itself (a retry could sign twice). Revoking: not concluded never_issued.';
comment on column gk_public.certificates.subject is 'What the certificate encodes besides its owner and profile (robots: O = team name, OU = name=<robot name>).';
grant select on gk_public.certificates to gk_admin;
grant insert (csr_pem, not_after, owner_team_id, profile, provisioning_credential_id, public_key_pem, robot_id, worker_id) on gk_public.certificates to gk_admin;
grant update (downloaded_at, fetch_requested_at, retry_requested_at) on gk_public.certificates to gk_admin;
grant update (downloaded_at) on gk_public.certificates to gk_api;
grant select on gk_public.certificates to gk_viewer;

create table gk_public.containers (
  id bigint generated always as identity not null,
  handle uuid default gen_random_uuid() not null,
  worker_id uuid not null,
  team_id uuid,
  build_id bigint,
  created_at timestamp with time zone default now() not null,
  constraint containers_pkey PRIMARY KEY (id),
  constraint containers_handle_key UNIQUE (handle),
  constraint containers_build_id_fkey FOREIGN KEY (build_id) REFERENCES gk_public.builds(id) ON DELETE SET NULL,
  constraint containers_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE SET NULL,
  constraint containers_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE CASCADE
);
CREATE INDEX containers_build_id_idx ON gk_public.containers USING btree (build_id);
CREATE INDEX containers_ownerless_idx ON gk_public.containers USING btree (id) WHERE (build_id IS NULL);
CREATE INDEX containers_team_id_idx ON gk_public.containers USING btree (team_id);
CREATE INDEX containers_worker_id_idx ON gk_public.containers USING btree (worker_id);
comment on table gk_public.containers is '@behavior -insert -update -delete
A container on a worker; owns the volumes mounted into it.';
grant select on gk_public.containers to gk_admin;
grant select on gk_public.containers to gk_viewer;

create table gk_public.controllers (
  id uuid default gen_random_uuid() not null,
  name text default 'groundskeeper'::text not null,
  created_at timestamp with time zone default now() not null,
  constraint controllers_pkey PRIMARY KEY (id),
  constraint controllers_name_key UNIQUE (name),
  constraint controllers_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text)
);
comment on table gk_public.controllers is '@behavior -insert -update -delete
Groundskeeper''s own identity for mutual TLS with agents. Deleting it revokes its certificates (a new one is made on demand).';
grant select on gk_public.controllers to gk_admin;
grant select on gk_public.controllers to gk_viewer;

create table gk_public.director_repositories (
  team_id uuid not null,
  root_version integer default 1 not null,
  root_expires timestamp with time zone not null,
  root_key_id text not null,
  online_key_id text not null,
  targets_lifetime interval default '1 day'::interval not null,
  snapshot_lifetime interval default '1 day'::interval not null,
  timestamp_lifetime interval default '1 day'::interval not null,
  root_lifetime interval default '365 days'::interval not null,
  resign_window interval default '03:00:00'::interval not null,
  created_at timestamp with time zone default now() not null,
  constraint director_repositories_pkey PRIMARY KEY (team_id),
  constraint director_repositories_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint director_repositories_check CHECK (resign_window > '00:00:00'::interval AND resign_window < LEAST(targets_lifetime, snapshot_lifetime, timestamp_lifetime, root_lifetime)),
  constraint director_repositories_online_key_id_check CHECK (online_key_id ~ '^[0-9a-f]{64}$'::text),
  constraint director_repositories_root_key_id_check CHECK (root_key_id ~ '^[0-9a-f]{64}$'::text),
  constraint director_repositories_root_version_check CHECK (root_version >= 1)
);
comment on table gk_public.director_repositories is '@behavior -insert -delete
A team''s Uptane director: root version and expiry, key ids, lifetimes of each robot''s metadata.';
grant select on gk_public.director_repositories to gk_admin;
grant update (resign_window, root_lifetime, snapshot_lifetime, targets_lifetime, timestamp_lifetime) on gk_public.director_repositories to gk_admin;
grant insert (online_key_id, root_expires, root_key_id, team_id) on gk_public.director_repositories to gk_peer;
grant select (team_id) on gk_public.director_repositories to gk_peer;
grant select on gk_public.director_repositories to gk_viewer;

create table gk_public.director_roots (
  team_id uuid not null,
  version integer not null,
  expires timestamp with time zone not null,
  document text not null,
  created_at timestamp with time zone default now() not null,
  constraint director_roots_pkey PRIMARY KEY (team_id, version),
  constraint director_roots_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.director_repositories(team_id) ON DELETE CASCADE,
  constraint director_roots_version_check CHECK (version >= 1)
);
comment on table gk_public.director_roots is '@behavior -insert -update -delete
Every director root version of a team (robots fetch N.root.json).';
grant select on gk_public.director_roots to gk_admin;
grant insert (document, expires, team_id, version) on gk_public.director_roots to gk_peer;
grant select (document, team_id, version) on gk_public.director_roots to gk_peer;
grant select on gk_public.director_roots to gk_viewer;

create table gk_public.ecu_keys (
  ecu_id uuid not null,
  team_id uuid not null,
  key_type text default 'ed25519'::text not null,
  public_key text not null,
  created_at timestamp with time zone default now() not null,
  constraint ecu_keys_pkey PRIMARY KEY (ecu_id),
  constraint ecu_keys_team_id_ecu_id_fkey FOREIGN KEY (team_id, ecu_id) REFERENCES gk_public.ecus(team_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
  constraint ecu_keys_key_type_check CHECK (key_type = 'ed25519'::text),
  constraint ecu_keys_public_key_check CHECK (public_key ~ '^[0-9a-f]{64}$'::text)
);
CREATE INDEX ecu_keys_team_idx ON gk_public.ecu_keys USING btree (team_id);
comment on table gk_public.ecu_keys is 'Each ECU''s public key (ed25519), against which the signatures of its robot''s manifests are checked.';
grant delete, select on gk_public.ecu_keys to gk_admin;
grant insert (ecu_id, public_key, team_id) on gk_public.ecu_keys to gk_admin;
grant update (public_key) on gk_public.ecu_keys to gk_admin;
grant select on gk_public.ecu_keys to gk_viewer;

create table gk_public.ecu_telemetry (
  team_id uuid not null,
  robot_id uuid not null,
  ecu_serial text not null,
  event_type text not null,
  device_time timestamp with time zone,
  recorded_at timestamp with time zone default now() not null,
  body jsonb default '{}'::jsonb not null,
  constraint ecu_telemetry_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robots(id) ON DELETE CASCADE,
  constraint ecu_telemetry_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE
) partition by range (recorded_at);
CREATE INDEX ecu_telemetry_robot_id_idx ON ONLY gk_public.ecu_telemetry USING btree (robot_id, recorded_at);
CREATE INDEX ecu_telemetry_team_id_idx ON ONLY gk_public.ecu_telemetry USING btree (team_id);
comment on table gk_public.ecu_telemetry is '@behavior -insert -update -delete
ECU events from robots, partitioned by day; retention drops whole partitions.';
grant select on gk_public.ecu_telemetry to gk_admin;
grant select on gk_public.ecu_telemetry to gk_viewer;

create table gk_public.ecu_version_reports (
  ecu_id uuid not null,
  team_id uuid not null,
  report_counter bigint not null,
  reported_at timestamp with time zone not null,
  received_at timestamp with time zone default now() not null,
  manifest_id bigint,
  reported_filepath text not null,
  reported_length bigint not null,
  reported_sha256 text,
  reported_sha512 text,
  expected_image_id uuid,
  rollout_id uuid,
  verdict text not null,
  detail text not null,
  constraint ecu_version_reports_pkey PRIMARY KEY (ecu_id),
  constraint ecu_version_reports_expected_image_id_fkey FOREIGN KEY (expected_image_id) REFERENCES gk_public.images(id) ON DELETE SET NULL,
  constraint ecu_version_reports_manifest_id_fkey FOREIGN KEY (manifest_id) REFERENCES gk_public.robot_manifests(id) ON DELETE SET NULL,
  constraint ecu_version_reports_rollout_id_fkey FOREIGN KEY (rollout_id) REFERENCES gk_public.rollouts(id) ON DELETE SET NULL,
  constraint ecu_version_reports_team_id_ecu_id_fkey FOREIGN KEY (team_id, ecu_id) REFERENCES gk_public.ecus(team_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
  constraint ecu_version_reports_check CHECK (reported_sha256 IS NOT NULL OR reported_sha512 IS NOT NULL),
  constraint ecu_version_reports_detail_check CHECK (length(detail) <= 1000),
  constraint ecu_version_reports_report_counter_check CHECK (report_counter >= 1 AND report_counter <= '9007199254740991'::bigint),
  constraint ecu_version_reports_reported_filepath_check CHECK (length(reported_filepath) >= 1 AND length(reported_filepath) <= 255),
  constraint ecu_version_reports_reported_length_check CHECK (reported_length >= 0),
  constraint ecu_version_reports_reported_sha256_check CHECK (reported_sha256 ~ '^[0-9a-f]{64}$'::text),
  constraint ecu_version_reports_reported_sha512_check CHECK (reported_sha512 ~ '^[0-9a-f]{128}$'::text),
  constraint ecu_version_reports_verdict_check CHECK (verdict = ANY (ARRAY['matches'::text, 'pending'::text, 'discrepancy'::text]))
);
CREATE INDEX ecu_version_reports_discrepancy_idx ON gk_public.ecu_version_reports USING btree (received_at DESC) WHERE (verdict = 'discrepancy'::text);
CREATE INDEX ecu_version_reports_image_idx ON gk_public.ecu_version_reports USING btree (expected_image_id) WHERE (expected_image_id IS NOT NULL);
CREATE INDEX ecu_version_reports_manifest_idx ON gk_public.ecu_version_reports USING btree (manifest_id) WHERE (manifest_id IS NOT NULL);
CREATE INDEX ecu_version_reports_rollout_idx ON gk_public.ecu_version_reports USING btree (rollout_id) WHERE (rollout_id IS NOT NULL);
CREATE TRIGGER _100_counter_increases BEFORE UPDATE OF report_counter, reported_at ON gk_public.ecu_version_reports FOR EACH ROW EXECUTE FUNCTION gk_private.tg_ecu_version_reports__counter_increases();
comment on table gk_public.ecu_version_reports is '@behavior -insert -update -delete
The last accepted version report of each ECU: its counter and time (a later manifest must exceed them), what it reports installed, and how that compares with the director''s targets (matches, pending, discrepancy).';
grant select on gk_public.ecu_version_reports to gk_admin;
grant select on gk_public.ecu_version_reports to gk_viewer;

create table gk_public.ecus (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  robot_id uuid not null,
  serial text not null,
  hardware_id text not null,
  is_primary boolean default false not null,
  installed_image_id uuid,
  status text,
  status_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  constraint ecus_pkey PRIMARY KEY (id),
  constraint ecus_robot_id_serial_key UNIQUE (robot_id, serial),
  constraint ecus_team_id_id_key UNIQUE (team_id, id),
  constraint ecus_team_id_installed_image_id_fkey FOREIGN KEY (team_id, installed_image_id) REFERENCES gk_public.images(team_id, id) ON DELETE SET NULL (installed_image_id),
  constraint ecus_team_id_robot_id_fkey FOREIGN KEY (team_id, robot_id) REFERENCES gk_public.robots(team_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
  constraint ecus_hardware_id_check CHECK (hardware_id ~ '^[[:graph:]]{1,100}$'::text),
  constraint ecus_serial_check CHECK (serial ~ '^[[:graph:]]{1,64}$'::text),
  constraint ecus_status_check CHECK (gk_private.rollouts_valid_ecu_status(status))
);
CREATE INDEX ecus_installed_image_idx ON gk_public.ecus USING btree (installed_image_id) WHERE (installed_image_id IS NOT NULL);
CREATE UNIQUE INDEX ecus_one_primary_idx ON gk_public.ecus USING btree (robot_id) WHERE is_primary;
CREATE INDEX ecus_team_hardware_idx ON gk_public.ecus USING btree (team_id, hardware_id);
CREATE TRIGGER _100_leave_team_images BEFORE UPDATE OF team_id ON gk_public.ecus FOR EACH ROW WHEN (old.team_id IS DISTINCT FROM new.team_id) EXECUTE FUNCTION gk_private.tg_ecus__leave_team_images();
CREATE TRIGGER _500_mark_director_dirty_delete AFTER DELETE ON gk_public.ecus REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_ecus__mark_director_dirty();
CREATE TRIGGER _500_mark_director_dirty_insert AFTER INSERT ON gk_public.ecus REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_ecus__mark_director_dirty();
CREATE TRIGGER _500_mark_director_dirty_update AFTER UPDATE ON gk_public.ecus REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_ecus__mark_director_dirty();
CREATE TRIGGER _500_robot_certificates_dirty_delete AFTER DELETE ON gk_public.ecus REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
CREATE TRIGGER _500_robot_certificates_dirty_insert AFTER INSERT ON gk_public.ecus REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
CREATE TRIGGER _500_robot_certificates_dirty_update AFTER UPDATE ON gk_public.ecus REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
comment on table gk_public.ecus is '@name ecu
Electronic control units of a robot: serial, hardware id, the image it reports installed.';
grant delete, select on gk_public.ecus to gk_admin;
grant insert (hardware_id, installed_image_id, is_primary, robot_id, serial, team_id) on gk_public.ecus to gk_admin;
grant update (hardware_id, installed_image_id, is_primary) on gk_public.ecus to gk_admin;
grant select on gk_public.ecus to gk_viewer;

create table gk_public.export_nodes (
  id uuid default gen_random_uuid() not null,
  worker_id uuid,
  address text not null,
  state text default 'in_service'::text not null,
  heartbeat_ttl interval default '00:01:00'::interval not null,
  last_heartbeat_at timestamp with time zone default now() not null,
  expires_at timestamp with time zone default (now() + '00:01:00'::interval) not null,
  agent_version text,
  attachments integer,
  registered_at timestamp with time zone default now() not null,
  expunged_at timestamp with time zone,
  attachments_sweep_after uuid,
  attachments_swept_at timestamp with time zone,
  constraint export_nodes_pkey PRIMARY KEY (id),
  constraint export_nodes_worker_id_key UNIQUE (worker_id),
  constraint export_nodes_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE SET NULL,
  constraint export_nodes_address_check CHECK (address ~ '^https://[A-Za-z0-9.:\[\]-]{1,255}:[0-9]{1,5}$'::text),
  constraint export_nodes_agent_version_check CHECK (length(agent_version) <= 100),
  constraint export_nodes_attachments_check CHECK (attachments >= 0),
  constraint export_nodes_expunged_at CHECK ((state = 'expunged'::text) = (expunged_at IS NOT NULL)),
  constraint export_nodes_heartbeat_ttl_check CHECK (heartbeat_ttl >= '00:00:02'::interval AND heartbeat_ttl <= '01:00:00'::interval),
  constraint export_nodes_in_service_has_worker CHECK (state <> 'in_service'::text OR worker_id IS NOT NULL),
  constraint export_nodes_state_check CHECK (state = ANY (ARRAY['in_service'::text, 'expunged'::text]))
);
CREATE INDEX export_nodes_in_service_idx ON gk_public.export_nodes USING btree (expires_at) WHERE (state = 'in_service'::text);
CREATE TRIGGER _100_expunge_when_worker_gone BEFORE UPDATE OF worker_id ON gk_public.export_nodes FOR EACH ROW EXECUTE FUNCTION gk_private.tg_export_nodes__expunge_when_worker_gone();
comment on table gk_public.export_nodes is '@behavior -insert -update -delete
Export nodes: agents that serve read-only resources (images) over their authenticated HTTPS server. Expunge one with expungeExportNode.';
comment on column gk_public.export_nodes.attachments_sweep_after is 'Where the sweep of unreferenced attachments resumes on this node (the last id it listed; null: from the first).';
comment on column gk_public.export_nodes.attachments_swept_at is 'When the sweep of unreferenced attachments last finished a pass over all of this node''s attachments.';
grant select on gk_public.export_nodes to gk_admin;
grant select on gk_public.export_nodes to gk_viewer;

create table gk_public.exports (
  id uuid default gen_random_uuid() not null,
  resource_type gk_public.export_resource_type not null,
  resource_id uuid not null,
  state text default 'requested'::text not null,
  delete_requested_at timestamp with time zone,
  node_id uuid,
  attachment_id uuid,
  url text,
  operating_saga_id uuid,
  saga_id uuid,
  generation bigint default 0 not null,
  attempts integer default 0 not null,
  created_at timestamp with time zone default now() not null,
  state_changed_at timestamp with time zone default now() not null,
  live_at timestamp with time zone,
  verified_at timestamp with time zone,
  deleted_at timestamp with time zone,
  saga_queued_until timestamp with time zone,
  saga_requeues integer default 0 not null,
  constraint exports_pkey PRIMARY KEY (id),
  constraint exports_node_id_fkey FOREIGN KEY (node_id) REFERENCES gk_public.export_nodes(id) ON DELETE RESTRICT,
  constraint exports_saga_id_fkey FOREIGN KEY (saga_id) REFERENCES gk_public.sagas(id) ON DELETE SET NULL,
  constraint exports_attempts_check CHECK (attempts >= 0),
  constraint exports_deleted_at CHECK ((state = 'deleted'::text) = (deleted_at IS NOT NULL)),
  constraint exports_generation_check CHECK (generation >= 0),
  constraint exports_live_attached CHECK ((state <> ALL (ARRAY['live'::text, 'deleting'::text])) OR node_id IS NOT NULL AND attachment_id IS NOT NULL AND url IS NOT NULL),
  constraint exports_locked CHECK ((state = ANY (ARRAY['assigning'::text, 'deleting'::text])) = (operating_saga_id IS NOT NULL)),
  constraint exports_requested_unattached CHECK (state <> 'requested'::text OR node_id IS NULL AND attachment_id IS NULL AND url IS NULL),
  constraint exports_saga_requeues_check CHECK (saga_requeues >= 0),
  constraint exports_state_check CHECK (state = ANY (ARRAY['requested'::text, 'assigning'::text, 'live'::text, 'deleting'::text, 'deleted'::text])),
  constraint exports_url_check CHECK (length(url) <= 2048)
);
CREATE INDEX exports_attachment_idx ON gk_public.exports USING btree (attachment_id) WHERE (state = ANY (ARRAY['assigning'::text, 'live'::text, 'deleting'::text]));
CREATE INDEX exports_delete_due_idx ON gk_public.exports USING btree (state_changed_at) WHERE ((delete_requested_at IS NOT NULL) AND (state <> 'deleted'::text) AND (saga_queued_until IS NULL));
CREATE INDEX exports_node_idx ON gk_public.exports USING btree (node_id) WHERE (state <> 'deleted'::text);
CREATE UNIQUE INDEX exports_one_per_resource ON gk_public.exports USING btree (resource_type, resource_id) WHERE (state <> 'deleted'::text);
CREATE INDEX exports_queued_until_idx ON gk_public.exports USING btree (saga_queued_until) WHERE (saga_queued_until IS NOT NULL);
CREATE INDEX exports_requested_idx ON gk_public.exports USING btree (created_at) WHERE ((state = 'requested'::text) AND (delete_requested_at IS NULL) AND (saga_queued_until IS NULL));
CREATE INDEX exports_saga_id_idx ON gk_public.exports USING btree (saga_id);
CREATE INDEX exports_unsettled_idx ON gk_public.exports USING btree (state_changed_at) WHERE ((state <> 'deleted'::text) AND ((state <> 'live'::text) OR (delete_requested_at IS NOT NULL)));
CREATE INDEX exports_verify_idx ON gk_public.exports USING btree (verified_at NULLS FIRST) WHERE ((state = 'live'::text) AND (delete_requested_at IS NULL));
CREATE TRIGGER _700_pending_when_deleted AFTER UPDATE OF state ON gk_public.exports FOR EACH ROW WHEN (new.state = 'deleted'::text AND old.state <> 'deleted'::text) EXECUTE FUNCTION gk_private.tg_exports__pending_when_deleted();
CREATE TRIGGER _700_pending_when_removed AFTER DELETE ON gk_public.exports REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_exports__pending_when_deleted();
comment on table gk_public.exports is '@behavior -insert -update -delete
Export records: which node serves which read-only resource, and the state of getting it there. Deleted records are kept.';
comment on column gk_public.exports.saga_queued_until is 'A saga was started for the record and has not taken it (or given it back) yet; after this the coordinator checks on that saga.';
comment on column gk_public.exports.saga_requeues is 'Times the queued saga was enqueued again by the coordinator''s overdue check since its lease started.';
grant select on gk_public.exports to gk_admin;
grant select on gk_public.exports to gk_viewer;

create table gk_public.images (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  name text not null,
  version text not null,
  blob_key text not null,
  length bigint not null,
  sha256 text not null,
  sha512 text not null,
  hardware_ids text[] not null,
  created_at timestamp with time zone default now() not null,
  constraint images_pkey PRIMARY KEY (id),
  constraint images_team_name_version_key UNIQUE (team_id, name, version),
  constraint images_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint images_blob_key_under_team CHECK (starts_with(blob_key, ('teams/'::text || team_id::text) || '/images/'::text) AND length(blob_key) >= (length(('teams/'::text || team_id::text) || '/images/'::text) + 1) AND length(blob_key) <= 1024 AND blob_key !~ '(^|/)\.\.?(/|$)'::text AND blob_key !~ '[[:cntrl:]\\]'::text AND blob_key !~ '//'::text),
  constraint images_hardware_ids_check CHECK (gk_private.images_valid_hardware_ids(hardware_ids)),
  constraint images_length_check CHECK (length >= 1 AND length <= '68719476736'::bigint),
  constraint images_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'::text),
  constraint images_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'::text),
  constraint images_sha512_check CHECK (sha512 ~ '^[0-9a-f]{128}$'::text),
  constraint images_version_check CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}$'::text)
);
CREATE INDEX images_hardware_ids_idx ON gk_public.images USING gin (hardware_ids);
CREATE UNIQUE INDEX images_team_id_id_idx ON gk_public.images USING btree (team_id, id);
CREATE TRIGGER _700_exports_pending_delete AFTER DELETE ON gk_public.images REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_images__exports_pending();
CREATE TRIGGER _700_exports_pending_insert AFTER INSERT ON gk_public.images REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_images__exports_pending();
comment on table gk_public.images is '@behavior -update
A team''s software images (immutable: a new build is a new version), matched to ECUs by hardware id.';
comment on column gk_public.images.id is '@behavior -insert';
comment on column gk_public.images.blob_key is 'Blob store key of the image''s bytes, under teams/<team_id>/images/.';
comment on column gk_public.images.hardware_ids is 'ECU hardware ids this image can be installed on (1 to 64, distinct).';
comment on column gk_public.images.created_at is '@behavior -insert';
grant delete, select on gk_public.images to gk_admin;
grant insert (blob_key, hardware_ids, length, name, sha256, sha512, team_id, version) on gk_public.images to gk_admin;
grant select on gk_public.images to gk_viewer;

create table gk_public.provisioning_credentials (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  name text not null,
  status text default 'issuing'::text not null,
  expires_at timestamp with time zone not null,
  created_at timestamp with time zone default now() not null,
  revoked_at timestamp with time zone,
  expired_at timestamp with time zone,
  constraint provisioning_credentials_pkey PRIMARY KEY (id),
  constraint provisioning_credentials_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint provisioning_credentials_check CHECK ((status = 'revoked'::text) = (revoked_at IS NOT NULL)),
  constraint provisioning_credentials_check1 CHECK ((status = 'expired'::text) = (expired_at IS NOT NULL)),
  constraint provisioning_credentials_name_check CHECK (length(name) >= 1 AND length(name) <= 200),
  constraint provisioning_credentials_status_check CHECK (status = ANY (ARRAY['issuing'::text, 'issued'::text, 'revoked'::text, 'expired'::text]))
);
CREATE INDEX provisioning_credentials_live_expires_idx ON gk_public.provisioning_credentials USING btree (expires_at) WHERE (status = ANY (ARRAY['issuing'::text, 'issued'::text]));
CREATE INDEX provisioning_credentials_team_id_idx ON gk_public.provisioning_credentials USING btree (team_id);
CREATE TRIGGER _500_expire_certificates AFTER UPDATE ON gk_public.provisioning_credentials REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_provisioning_credentials__expire_certificates();
CREATE TRIGGER _500_revoke_certificates AFTER UPDATE ON gk_public.provisioning_credentials REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_provisioning_credentials__revoke_certificates();
comment on table gk_public.provisioning_credentials is '@behavior -insert -update -delete
A pair of certificates (client_auth, provisioning) for enrolling robots. Revoking it revokes both at the CA.';
grant select on gk_public.provisioning_credentials to gk_admin;
grant insert (expires_at, name, team_id) on gk_public.provisioning_credentials to gk_admin;
grant update (revoked_at, status) on gk_public.provisioning_credentials to gk_admin;
grant update (name) on gk_public.provisioning_credentials to gk_api;
grant select on gk_public.provisioning_credentials to gk_viewer;

create table gk_public.purge_items (
  id bigint generated always as identity not null,
  kind text not null,
  ref text not null,
  team_id uuid,
  enqueued_at timestamp with time zone default now() not null,
  attempts integer default 0 not null,
  last_error text,
  next_attempt_at timestamp with time zone default now() not null,
  completed_at timestamp with time zone,
  progress_after text,
  progress_count bigint default 0 not null,
  retry_requested_at timestamp with time zone,
  progress_pending_until text,
  constraint purge_items_pkey PRIMARY KEY (id),
  constraint purge_items_kind_fkey FOREIGN KEY (kind) REFERENCES gk_public.bin_kinds(kind) ON UPDATE CASCADE ON DELETE RESTRICT,
  constraint purge_items_attempts_check CHECK (attempts >= 0),
  constraint purge_items_progress_count_check CHECK (progress_count >= 0),
  constraint purge_items_progress_pending_until_check CHECK (length(progress_pending_until) <= 2048),
  constraint purge_items_ref_check CHECK (length(ref) >= 1 AND length(ref) <= 1024)
);
CREATE INDEX purge_items_completed_at_idx ON gk_public.purge_items USING btree (completed_at) WHERE (completed_at IS NOT NULL);
CREATE INDEX purge_items_pending_due_idx ON gk_public.purge_items USING btree (next_attempt_at) WHERE (completed_at IS NULL);
CREATE UNIQUE INDEX purge_items_pending_kind_ref_idx ON gk_public.purge_items USING btree (kind, ref) WHERE (completed_at IS NULL);
CREATE TRIGGER _500_enqueue_insert AFTER INSERT ON gk_public.purge_items REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_purge_items__enqueue();
CREATE TRIGGER _500_enqueue_retry AFTER UPDATE ON gk_public.purge_items REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_purge_items__enqueue();
comment on table gk_public.purge_items is '@behavior -insert -update -delete
Deletions of things that have no row any more (a deleted team''s blob prefix), with progress and last error.';
comment on column gk_public.purge_items.progress_pending_until is 'Keys up to here are counted in progress_count (their deletion may not have landed yet; a resume re-deletes them without counting).';
grant select on gk_public.purge_items to gk_admin;
grant update (retry_requested_at) on gk_public.purge_items to gk_admin;
grant select on gk_public.purge_items to gk_viewer;

create table gk_public.reconcilers (
  name text not null,
  description text not null,
  schedule text,
  job_key text not null,
  queue_name text,
  registered_at timestamp with time zone default now() not null,
  constraint reconcilers_pkey PRIMARY KEY (name),
  constraint reconcilers_description_check CHECK (length(description) >= 1 AND length(description) <= 500),
  constraint reconcilers_job_key_check CHECK (length(job_key) >= 1 AND length(job_key) <= 200),
  constraint reconcilers_name_check CHECK (name ~ '^[a-z]+__[a-z_]+$'::text),
  constraint reconcilers_queue_name_check CHECK (length(queue_name) >= 1 AND length(queue_name) <= 200),
  constraint reconcilers_schedule_check CHECK (length(schedule) <= 100)
);
comment on table gk_public.reconcilers is 'The periodic reconcilers (registered from tasks/ and the crontab at every migrate).';
grant select on gk_public.reconcilers to gk_admin;
grant select on gk_public.reconcilers to gk_viewer;

create table gk_public.resource_cache_uses (
  id bigint generated always as identity not null,
  resource_cache_id bigint not null,
  build_id bigint not null,
  constraint resource_cache_uses_pkey PRIMARY KEY (id),
  constraint resource_cache_uses_resource_cache_id_build_id_key UNIQUE (resource_cache_id, build_id),
  constraint resource_cache_uses_build_id_fkey FOREIGN KEY (build_id) REFERENCES gk_public.builds(id) ON DELETE CASCADE,
  constraint resource_cache_uses_resource_cache_id_fkey FOREIGN KEY (resource_cache_id) REFERENCES gk_public.resource_caches(id) ON DELETE RESTRICT
);
CREATE INDEX resource_cache_uses_build_id_idx ON gk_public.resource_cache_uses USING btree (build_id);
comment on table gk_public.resource_cache_uses is '@behavior -insert -update -delete
A build using a resource cache: while it exists the cache cannot be deleted.';
grant select on gk_public.resource_cache_uses to gk_admin;
grant select on gk_public.resource_cache_uses to gk_viewer;

create table gk_public.resource_caches (
  id bigint generated always as identity not null,
  resource_config_id bigint not null,
  version_digest text not null,
  params_hash text default ''::text not null,
  created_at timestamp with time zone default now() not null,
  constraint resource_caches_pkey PRIMARY KEY (id),
  constraint resource_caches_resource_config_id_version_digest_params_ha_key UNIQUE (resource_config_id, version_digest, params_hash),
  constraint resource_caches_resource_config_id_fkey FOREIGN KEY (resource_config_id) REFERENCES gk_public.resource_configs(id) ON DELETE RESTRICT,
  constraint resource_caches_params_hash_check CHECK (length(params_hash) <= 128),
  constraint resource_caches_version_digest_check CHECK (length(version_digest) >= 1 AND length(version_digest) <= 128)
);
comment on table gk_public.resource_caches is '@behavior -insert -update -delete
One fetched version of a resource config.';
grant select on gk_public.resource_caches to gk_admin;
grant select on gk_public.resource_caches to gk_viewer;

create table gk_public.resource_configs (
  id bigint generated always as identity not null,
  base_resource_type_id bigint not null,
  source_hash text not null,
  constraint resource_configs_pkey PRIMARY KEY (id),
  constraint resource_configs_base_resource_type_id_source_hash_key UNIQUE (base_resource_type_id, source_hash),
  constraint resource_configs_base_resource_type_id_fkey FOREIGN KEY (base_resource_type_id) REFERENCES gk_public.base_resource_types(id) ON DELETE CASCADE,
  constraint resource_configs_source_hash_check CHECK (length(source_hash) >= 1 AND length(source_hash) <= 128)
);
comment on table gk_public.resource_configs is '@behavior -insert -update -delete
A resource type plus its source configuration.';
grant select on gk_public.resource_configs to gk_admin;
grant select on gk_public.resource_configs to gk_viewer;

create table gk_public.retention_policies (
  kind text not null,
  retention interval not null,
  description text default ''::text not null,
  max_per_activation integer default 10000 not null,
  constraint retention_policies_pkey PRIMARY KEY (kind),
  constraint retention_policies_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]{0,40}$'::text),
  constraint retention_policies_max_per_activation_check CHECK (max_per_activation >= 1 AND max_per_activation <= 1000000),
  constraint retention_policies_retention_check CHECK (retention > '00:00:00'::interval)
);
comment on table gk_public.retention_policies is 'How long each kind of history (manifests, telemetry, non-current TUF metadata...) is kept.';
comment on column gk_public.retention_policies.max_per_activation is 'At most this many rows are pruned per activation of the sweep; the rest goes next time.';
grant select on gk_public.retention_policies to gk_admin;
grant update (max_per_activation, retention) on gk_public.retention_policies to gk_admin;
grant select on gk_public.retention_policies to gk_viewer;

create table gk_public.robot_director_documents (
  robot_id uuid not null,
  targets text not null,
  snapshot text not null,
  "timestamp" text not null,
  constraint robot_director_documents_pkey PRIMARY KEY (robot_id),
  constraint robot_director_documents_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robot_directors(robot_id) ON DELETE CASCADE
);
comment on table gk_public.robot_director_documents is '@behavior -insert -update -delete
Each robot''s current signed director documents (what it is served).';
grant select on gk_public.robot_director_documents to gk_admin;
grant select (robot_id, snapshot, targets, "timestamp") on gk_public.robot_director_documents to gk_peer;
grant select on gk_public.robot_director_documents to gk_viewer;

create table gk_public.robot_directors (
  robot_id uuid not null,
  team_id uuid not null,
  dirty boolean default true not null,
  dirty_since timestamp with time zone default now(),
  generation bigint default 1 not null,
  signed_generation bigint default 0 not null,
  root_version integer,
  targets_version integer default 0 not null,
  snapshot_version integer default 0 not null,
  timestamp_version integer default 0 not null,
  expires timestamp with time zone,
  signed_at timestamp with time zone,
  constraint robot_directors_pkey PRIMARY KEY (robot_id),
  constraint robot_directors_team_id_robot_id_fkey FOREIGN KEY (team_id, robot_id) REFERENCES gk_public.robots(team_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
  constraint robot_directors_check CHECK (dirty = (dirty_since IS NOT NULL)),
  constraint robot_directors_check1 CHECK (signed_generation <= generation),
  constraint robot_directors_check2 CHECK ((signed_generation = 0) = (expires IS NULL))
);
CREATE INDEX robot_directors_dirty_idx ON gk_public.robot_directors USING btree (dirty_since) WHERE dirty;
CREATE INDEX robot_directors_expires_idx ON gk_public.robot_directors USING btree (expires) WHERE (NOT dirty);
CREATE INDEX robot_directors_team_idx ON gk_public.robot_directors USING btree (team_id);
comment on table gk_public.robot_directors is '@behavior -insert -update -delete
Each robot''s director metadata state: dirty flag, generation, versions, expiry.';
grant select on gk_public.robot_directors to gk_admin;
grant select (dirty, expires, robot_id, root_version, team_id) on gk_public.robot_directors to gk_peer;
grant select on gk_public.robot_directors to gk_viewer;

create table gk_public.robot_group_members (
  team_id uuid not null,
  group_id uuid not null,
  robot_id uuid not null,
  added_at timestamp with time zone default now() not null,
  constraint robot_group_members_pkey PRIMARY KEY (group_id, robot_id),
  constraint robot_group_members_team_id_group_id_fkey FOREIGN KEY (team_id, group_id) REFERENCES gk_public.robot_groups(team_id, id) ON DELETE CASCADE,
  constraint robot_group_members_team_id_robot_id_fkey FOREIGN KEY (team_id, robot_id) REFERENCES gk_public.robots(team_id, id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX robot_group_members_robot_idx ON gk_public.robot_group_members USING btree (robot_id);
CREATE TRIGGER _500_robot_certificates_dirty_delete AFTER DELETE ON gk_public.robot_group_members REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
CREATE TRIGGER _500_robot_certificates_dirty_insert AFTER INSERT ON gk_public.robot_group_members REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
comment on table gk_public.robot_group_members is 'Membership of robots in groups (both of one team).';
grant delete, select on gk_public.robot_group_members to gk_admin;
grant insert (group_id, robot_id, team_id) on gk_public.robot_group_members to gk_admin;
grant select on gk_public.robot_group_members to gk_viewer;

create table gk_public.robot_groups (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  name text not null,
  created_at timestamp with time zone default now() not null,
  constraint robot_groups_pkey PRIMARY KEY (id),
  constraint robot_groups_team_id_id_key UNIQUE (team_id, id),
  constraint robot_groups_team_id_name_key UNIQUE (team_id, name),
  constraint robot_groups_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint robot_groups_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'::text)
);
CREATE TRIGGER _500_robot_certificates_dirty AFTER UPDATE ON gk_public.robot_groups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty();
comment on table gk_public.robot_groups is 'A named set of a team''s robots, a rollout target.';
grant delete, select on gk_public.robot_groups to gk_admin;
grant insert (name, team_id) on gk_public.robot_groups to gk_admin;
grant update (name) on gk_public.robot_groups to gk_admin;
grant select on gk_public.robot_groups to gk_viewer;

create table gk_public.robot_manifests (
  id bigint generated always as identity not null,
  team_id uuid not null,
  robot_id uuid not null,
  received_at timestamp with time zone default now() not null,
  valid boolean not null,
  body jsonb not null,
  constraint robot_manifests_pkey PRIMARY KEY (id),
  constraint robot_manifests_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robots(id) ON DELETE CASCADE,
  constraint robot_manifests_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE
);
CREATE INDEX robot_manifests_received_at_idx ON gk_public.robot_manifests USING btree (received_at);
CREATE INDEX robot_manifests_robot_id_idx ON gk_public.robot_manifests USING btree (robot_id, received_at DESC);
CREATE INDEX robot_manifests_team_id_idx ON gk_public.robot_manifests USING btree (team_id);
comment on table gk_public.robot_manifests is '@behavior -insert -update -delete
Signed manifests reported by robots; pruned by the retention sweep.';
grant select on gk_public.robot_manifests to gk_admin;
grant select on gk_public.robot_manifests to gk_viewer;

create table gk_public.robots (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  name text not null,
  created_at timestamp with time zone default now() not null,
  certificate_generation bigint default 0 not null,
  certificate_dirty_since timestamp with time zone,
  constraint robots_pkey PRIMARY KEY (id),
  constraint robots_team_id_name_key UNIQUE (team_id, name),
  constraint robots_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint robots_certificate_generation_check CHECK (certificate_generation >= 0),
  constraint robots_name_check CHECK (length(name) >= 1 AND length(name) <= 200)
);
CREATE INDEX robots_certificate_dirty_idx ON gk_public.robots USING btree (certificate_dirty_since) WHERE (certificate_dirty_since IS NOT NULL);
CREATE UNIQUE INDEX robots_team_id_id_idx ON gk_public.robots USING btree (team_id, id);
CREATE INDEX robots_team_id_idx ON gk_public.robots USING btree (team_id);
CREATE TRIGGER _100_leave_team BEFORE UPDATE OF team_id ON gk_public.robots FOR EACH ROW WHEN (old.team_id IS DISTINCT FROM new.team_id) EXECUTE FUNCTION gk_private.tg_robots__leave_team();
CREATE TRIGGER _500_robot_certificates_dirty AFTER UPDATE ON gk_public.robots REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robots__robot_certificates_dirty();
CREATE TRIGGER _510_moved_team AFTER UPDATE ON gk_public.robots REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_robots__moved_team();
comment on table gk_public.robots is 'A device of a team''s fleet.';
comment on column gk_public.robots.id is '@behavior -insert -update';
comment on column gk_public.robots.created_at is '@behavior -insert -update';
comment on column gk_public.robots.certificate_generation is '@behavior -insert -update
Bumped whenever something the robot''s certificate encodes changes (its name, its team''s name).';
comment on column gk_public.robots.certificate_dirty_since is '@behavior -insert -update
Since when the robot''s certificate encodes an older generation: it gets a new one at its next certificate read, or from the sweep (robots__regenerate).';
grant delete, insert, select, update on gk_public.robots to gk_admin;
grant select (certificate_dirty_since, certificate_generation, id) on gk_public.robots to gk_peer;
grant update (certificate_dirty_since) on gk_public.robots to gk_peer;
grant select on gk_public.robots to gk_viewer;

create table gk_public.rollout_events (
  id bigint generated always as identity not null,
  team_id uuid not null,
  robot_id uuid not null,
  event_id uuid not null,
  ecu_id uuid not null,
  rollout_id uuid,
  type text not null,
  description text,
  received_at timestamp with time zone default now() not null,
  constraint rollout_events_pkey PRIMARY KEY (id),
  constraint rollout_events_robot_id_event_id_key UNIQUE (robot_id, event_id),
  constraint rollout_events_ecu_id_fkey FOREIGN KEY (ecu_id) REFERENCES gk_public.ecus(id) ON DELETE CASCADE,
  constraint rollout_events_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robots(id) ON DELETE CASCADE,
  constraint rollout_events_team_id_rollout_id_fkey FOREIGN KEY (team_id, rollout_id) REFERENCES gk_public.rollouts(team_id, id) ON DELETE SET NULL (rollout_id),
  constraint rollout_events_description_check CHECK (length(description) <= 2000),
  constraint rollout_events_type_check CHECK (gk_private.rollouts_valid_ecu_status(type))
);
CREATE INDEX rollout_events_ecu_idx ON gk_public.rollout_events USING btree (ecu_id);
CREATE INDEX rollout_events_received_idx ON gk_public.rollout_events USING btree (received_at);
CREATE INDEX rollout_events_rollout_idx ON gk_public.rollout_events USING btree (rollout_id) WHERE (rollout_id IS NOT NULL);
comment on table gk_public.rollout_events is '@behavior -insert -update -delete
ECU events reported by robots (idempotent by event id).';
grant select on gk_public.rollout_events to gk_admin;
grant select on gk_public.rollout_events to gk_viewer;

create table gk_public.rollout_images (
  team_id uuid not null,
  rollout_id uuid not null,
  hardware_id text not null,
  image_id uuid not null,
  constraint rollout_images_pkey PRIMARY KEY (rollout_id, hardware_id),
  constraint rollout_images_team_id_image_id_fkey FOREIGN KEY (team_id, image_id) REFERENCES gk_public.images(team_id, id) DEFERRABLE INITIALLY DEFERRED,
  constraint rollout_images_team_id_rollout_id_fkey FOREIGN KEY (team_id, rollout_id) REFERENCES gk_public.rollouts(team_id, id) ON DELETE CASCADE,
  constraint rollout_images_hardware_id_check CHECK (hardware_id ~ '^[[:graph:]]{1,100}$'::text)
);
CREATE INDEX rollout_images_image_idx ON gk_public.rollout_images USING btree (image_id);
CREATE TRIGGER _100_check_hardware BEFORE INSERT OR UPDATE ON gk_public.rollout_images FOR EACH ROW EXECUTE FUNCTION gk_private.tg_rollout_images__check_hardware();
CREATE TRIGGER _100_immutable_once_launched BEFORE INSERT OR DELETE OR UPDATE ON gk_public.rollout_images FOR EACH ROW EXECUTE FUNCTION gk_private.tg_rollouts__immutable_once_launched();
comment on table gk_public.rollout_images is '@behavior -insert -update -delete
Hardware id → image of a rollout.';
grant select on gk_public.rollout_images to gk_admin;
grant select on gk_public.rollout_images to gk_viewer;

create table gk_public.rollout_robot_ecus (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  ecu_id uuid not null,
  image_id uuid not null,
  status text,
  updated_at timestamp with time zone default now() not null,
  constraint rollout_robot_ecus_pkey PRIMARY KEY (rollout_id, ecu_id),
  constraint rollout_robot_ecus_ecu_id_fkey FOREIGN KEY (ecu_id) REFERENCES gk_public.ecus(id) ON DELETE CASCADE,
  constraint rollout_robot_ecus_rollout_id_robot_id_fkey FOREIGN KEY (rollout_id, robot_id) REFERENCES gk_public.rollout_robots(rollout_id, robot_id) ON DELETE CASCADE,
  constraint rollout_robot_ecus_status_check CHECK (gk_private.rollouts_valid_ecu_status(status))
);
CREATE INDEX rollout_robot_ecus_ecu_idx ON gk_public.rollout_robot_ecus USING btree (ecu_id);
CREATE INDEX rollout_robot_ecus_robot_idx ON gk_public.rollout_robot_ecus USING btree (rollout_id, robot_id);
comment on table gk_public.rollout_robot_ecus is '@name rollout_robot_ecu
@behavior -insert -update -delete
Per ECU that reported an event in a rollout: the image the rollout maps it to and its last reported status.';
grant select on gk_public.rollout_robot_ecus to gk_admin;
grant select on gk_public.rollout_robot_ecus to gk_viewer;

create table gk_public.rollout_robots (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  state text default 'pending'::text not null,
  result text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  constraint rollout_robots_pkey PRIMARY KEY (rollout_id, robot_id),
  constraint rollout_robots_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES gk_public.robots(id) ON DELETE CASCADE,
  constraint rollout_robots_team_id_rollout_id_fkey FOREIGN KEY (team_id, rollout_id) REFERENCES gk_public.rollouts(team_id, id) ON DELETE CASCADE,
  constraint rollout_robots_check CHECK ((state = ANY (ARRAY['pending'::text, 'scheduled'::text, 'accepted'::text])) OR result IS NOT NULL),
  constraint rollout_robots_result_check CHECK (length(result) <= 2000),
  constraint rollout_robots_state_check CHECK (state = ANY (ARRAY['pending'::text, 'scheduled'::text, 'accepted'::text, 'completed'::text, 'failed'::text, 'skipped'::text, 'cancelled'::text]))
);
CREATE UNIQUE INDEX rollout_robots_one_active_idx ON gk_public.rollout_robots USING btree (robot_id) WHERE (state = ANY (ARRAY['pending'::text, 'scheduled'::text, 'accepted'::text]));
CREATE INDEX rollout_robots_robot_idx ON gk_public.rollout_robots USING btree (robot_id);
CREATE INDEX rollout_robots_rollout_state_idx ON gk_public.rollout_robots USING btree (rollout_id, state);
CREATE TRIGGER _500_mark_director_dirty_insert AFTER INSERT ON gk_public.rollout_robots REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_rollout_robots__mark_director_dirty();
CREATE TRIGGER _500_mark_director_dirty_update AFTER UPDATE ON gk_public.rollout_robots REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_rollout_robots__mark_director_dirty();
comment on table gk_public.rollout_robots is '@behavior -insert -update -delete
Each robot of a launched rollout: pending → scheduled → accepted → completed / failed / skipped / cancelled, with a result.';
grant select on gk_public.rollout_robots to gk_admin;
grant select (robot_id, state) on gk_public.rollout_robots to gk_peer;
grant select on gk_public.rollout_robots to gk_viewer;

create table gk_public.rollout_selected_robots (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  constraint rollout_selected_robots_pkey PRIMARY KEY (rollout_id, robot_id),
  constraint rollout_selected_robots_team_id_robot_id_fkey FOREIGN KEY (team_id, robot_id) REFERENCES gk_public.robots(team_id, id) ON DELETE CASCADE,
  constraint rollout_selected_robots_team_id_rollout_id_fkey FOREIGN KEY (team_id, rollout_id) REFERENCES gk_public.rollouts(team_id, id) ON DELETE CASCADE
);
CREATE INDEX rollout_selected_robots_robot_idx ON gk_public.rollout_selected_robots USING btree (robot_id);
CREATE TRIGGER _100_immutable_once_launched BEFORE INSERT OR DELETE OR UPDATE ON gk_public.rollout_selected_robots FOR EACH ROW EXECUTE FUNCTION gk_private.tg_rollouts__immutable_once_launched();
comment on table gk_public.rollout_selected_robots is '@behavior -insert -update -delete
The robots a selected_robots rollout targets.';
grant select on gk_public.rollout_selected_robots to gk_admin;
grant select on gk_public.rollout_selected_robots to gk_viewer;

create table gk_public.rollouts (
  id uuid default gen_random_uuid() not null,
  team_id uuid not null,
  name text not null,
  target_type text not null,
  group_id uuid,
  state text default 'prepared'::text not null,
  max_failed_robots integer,
  robot_deadline interval default '14 days'::interval not null,
  result text,
  created_at timestamp with time zone default now() not null,
  launched_at timestamp with time zone,
  ended_at timestamp with time zone,
  constraint rollouts_pkey PRIMARY KEY (id),
  constraint rollouts_team_id_id_key UNIQUE (team_id, id),
  constraint rollouts_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint rollouts_team_id_group_id_fkey FOREIGN KEY (team_id, group_id) REFERENCES gk_public.robot_groups(team_id, id) ON DELETE SET NULL (group_id),
  constraint rollouts_check CHECK (target_type = 'group'::text OR group_id IS NULL),
  constraint rollouts_check1 CHECK ((state = 'prepared'::text) = (launched_at IS NULL) OR state = 'cancelled'::text),
  constraint rollouts_check2 CHECK ((state = ANY (ARRAY['completed'::text, 'cancelled'::text, 'failed'::text])) = (ended_at IS NOT NULL)),
  constraint rollouts_max_failed_robots_check CHECK (max_failed_robots >= 0),
  constraint rollouts_name_check CHECK (length(name) >= 1 AND length(name) <= 200),
  constraint rollouts_result_check CHECK (length(result) <= 2000),
  constraint rollouts_robot_deadline_check CHECK (robot_deadline >= '00:01:00'::interval AND robot_deadline <= '365 days'::interval),
  constraint rollouts_state_check CHECK (state = ANY (ARRAY['prepared'::text, 'launched'::text, 'completed'::text, 'cancelled'::text, 'failed'::text])),
  constraint rollouts_target_type_check CHECK (target_type = ANY (ARRAY['group'::text, 'hardware_id_match'::text, 'selected_robots'::text]))
);
CREATE INDEX rollouts_group_idx ON gk_public.rollouts USING btree (group_id) WHERE (group_id IS NOT NULL);
CREATE INDEX rollouts_launched_idx ON gk_public.rollouts USING btree (launched_at) WHERE (state = 'launched'::text);
CREATE INDEX rollouts_team_idx ON gk_public.rollouts USING btree (team_id, created_at DESC);
comment on table gk_public.rollouts is '@behavior -insert -update -delete
An update of a team''s robots: target (group, hardware id match, selected robots), images per hardware id, state prepared → launched → completed / cancelled / failed.';
grant select on gk_public.rollouts to gk_admin;
grant select on gk_public.rollouts to gk_viewer;

create table gk_public.saga_events (
  id bigint generated always as identity not null,
  saga_id uuid not null,
  step integer not null,
  step_name text not null,
  event text not null,
  error text,
  at timestamp with time zone default now() not null,
  constraint saga_events_pkey PRIMARY KEY (id),
  constraint saga_events_saga_id_fkey FOREIGN KEY (saga_id) REFERENCES gk_public.sagas(id) ON DELETE CASCADE,
  constraint saga_events_event_check CHECK (event = ANY (ARRAY['done'::text, 'failed'::text, 'undone'::text, 'undo_failed'::text])),
  constraint saga_events_step_check CHECK (step >= 0)
);
CREATE INDEX saga_events_saga_id_idx ON gk_public.saga_events USING btree (saga_id, id);
comment on table gk_public.saga_events is '@behavior -insert -update -delete
The history of each saga: every step done, failed, undone or whose undo failed.';
grant select on gk_public.saga_events to gk_admin;
grant select on gk_public.saga_events to gk_viewer;

create table gk_public.sagas (
  id uuid default gen_random_uuid() not null,
  name text not null,
  params jsonb not null,
  steps text[] not null,
  state text default 'running'::text not null,
  step integer default 0 not null,
  outputs jsonb default '{}'::jsonb not null,
  failed_step text,
  error text,
  undo_error text,
  undo_attempts integer default 0 not null,
  retry_requested_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  finished_at timestamp with time zone,
  constraint sagas_pkey PRIMARY KEY (id),
  constraint sagas_finished CHECK ((state = ANY (ARRAY['succeeded'::text, 'failed'::text])) = (finished_at IS NOT NULL)),
  constraint sagas_name_check CHECK (name ~ '^[a-z][a-z0-9_]{0,40}__[a-z][a-z0-9_]{0,40}$'::text),
  constraint sagas_outputs_check CHECK (jsonb_typeof(outputs) = 'object'::text AND octet_length(outputs::text) <= 262144),
  constraint sagas_params_check CHECK (jsonb_typeof(params) = 'object'::text AND octet_length(params::text) <= 65536),
  constraint sagas_state_check CHECK (state = ANY (ARRAY['running'::text, 'unwinding'::text, 'succeeded'::text, 'failed'::text])),
  constraint sagas_step_in_range CHECK (step >= 0 AND step <= cardinality(steps)),
  constraint sagas_steps_check CHECK (cardinality(steps) >= 1 AND cardinality(steps) <= 64 AND array_ndims(steps) = 1),
  constraint sagas_succeeded_ran_all CHECK (state <> 'succeeded'::text OR step = cardinality(steps)),
  constraint sagas_undo_attempts_check CHECK (undo_attempts >= 0),
  constraint sagas_unwinding_has_error CHECK ((state = ANY (ARRAY['unwinding'::text, 'failed'::text])) = (error IS NOT NULL AND failed_step IS NOT NULL))
);
CREATE INDEX sagas_finished_at_idx ON gk_public.sagas USING btree (finished_at) WHERE (finished_at IS NOT NULL);
CREATE INDEX sagas_unfinished_idx ON gk_public.sagas USING btree (name, created_at) WHERE (finished_at IS NULL);
CREATE TRIGGER _500_enqueue_retry AFTER UPDATE OF retry_requested_at ON gk_public.sagas FOR EACH ROW WHEN (new.finished_at IS NULL AND new.retry_requested_at IS DISTINCT FROM old.retry_requested_at) EXECUTE FUNCTION gk_private.tg_sagas__enqueue_retry();
comment on table gk_public.sagas is '@behavior -insert -update -delete
@name saga
Multi-step operations with undo (sagas): the next step, what each action returned, why one unwinds.';
grant select on gk_public.sagas to gk_admin;
grant update (retry_requested_at) on gk_public.sagas to gk_admin;
grant select on gk_public.sagas to gk_viewer;

create table gk_public.teams (
  id uuid default gen_random_uuid() not null,
  name text not null,
  created_at timestamp with time zone default now() not null,
  constraint teams_pkey PRIMARY KEY (id),
  constraint teams_name_key UNIQUE (name),
  constraint teams_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text)
);
CREATE TRIGGER _500_purge_blobs AFTER DELETE ON gk_public.teams REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_teams__purge_blobs();
CREATE TRIGGER _500_robot_certificates_dirty AFTER UPDATE ON gk_public.teams REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_teams__robot_certificates_dirty();
comment on table gk_public.teams is 'A tenant of the platform. Deleting a team cascades to its robots and sends its certificates and blobs to the bin.';
comment on column gk_public.teams.id is '@behavior -insert -update';
comment on column gk_public.teams.created_at is '@behavior -insert -update';
grant delete, insert, select, update on gk_public.teams to gk_admin;
grant select on gk_public.teams to gk_viewer;

create table gk_public.tuf_metadata (
  id bigint generated always as identity not null,
  team_id uuid not null,
  role text not null,
  version integer not null,
  expires timestamp with time zone not null,
  document text not null,
  created_at timestamp with time zone default now() not null,
  uploaded_at timestamp with time zone,
  constraint tuf_metadata_pkey PRIMARY KEY (id),
  constraint tuf_metadata_team_id_role_version_key UNIQUE (team_id, role, version),
  constraint tuf_metadata_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.tuf_repositories(team_id) ON DELETE CASCADE,
  constraint tuf_metadata_version_check CHECK (version >= 1)
);
CREATE INDEX tuf_metadata_created_idx ON gk_public.tuf_metadata USING btree (created_at) WHERE (role <> 'root'::text);
CREATE INDEX tuf_metadata_pending_idx ON gk_public.tuf_metadata USING btree (team_id, id) WHERE (uploaded_at IS NULL);
comment on table gk_public.tuf_metadata is 'Every signed TUF document (role, version), as uploaded to the blob store; uploaded_at is null until it is.';
grant select on gk_public.tuf_metadata to gk_admin;
grant select on gk_public.tuf_metadata to gk_viewer;

create table gk_public.tuf_repositories (
  team_id uuid not null,
  bit_length smallint not null,
  root_version integer default 1 not null,
  root_threshold smallint not null,
  root_expires timestamp with time zone not null,
  online_key_id text not null,
  online_public_key text not null,
  targets_lifetime interval default '365 days'::interval not null,
  bins_lifetime interval default '30 days'::interval not null,
  snapshot_lifetime interval default '7 days'::interval not null,
  timestamp_lifetime interval default '1 day'::interval not null,
  resign_window interval default '06:00:00'::interval not null,
  publish_delay interval default '00:00:01'::interval not null,
  last_sign_duration interval default '00:00:00'::interval not null,
  created_at timestamp with time zone default now() not null,
  last_publish_error text,
  publish_failing_since timestamp with time zone,
  publish_failures integer default 0 not null,
  last_published_at timestamp with time zone,
  constraint tuf_repositories_pkey PRIMARY KEY (team_id),
  constraint tuf_repositories_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint tuf_repositories_bit_length_check CHECK (bit_length >= 1 AND bit_length <= 14),
  constraint tuf_repositories_check CHECK (resign_window > '00:00:00'::interval AND resign_window < LEAST(targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime)),
  constraint tuf_repositories_failing_check CHECK ((publish_failing_since IS NULL) = (last_publish_error IS NULL)),
  constraint tuf_repositories_last_publish_error_check CHECK (length(last_publish_error) <= 2000),
  constraint tuf_repositories_lifetimes_check CHECK (gk_private.tuf_lifetimes_problem(targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay) IS NULL),
  constraint tuf_repositories_online_key_id_check CHECK (online_key_id ~ '^[0-9a-f]{64}$'::text),
  constraint tuf_repositories_online_public_key_check CHECK (online_public_key ~ '^[0-9a-f]{64}$'::text),
  constraint tuf_repositories_publish_delay_check CHECK (publish_delay >= '00:00:00'::interval),
  constraint tuf_repositories_publish_failures_check CHECK (publish_failures >= 0),
  constraint tuf_repositories_root_threshold_check CHECK (root_threshold >= 1),
  constraint tuf_repositories_root_version_check CHECK (root_version >= 1)
);
CREATE TRIGGER _100_check_lifetimes BEFORE INSERT OR UPDATE OF targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay ON gk_public.tuf_repositories FOR EACH ROW EXECUTE FUNCTION gk_private.tg_tuf_repositories__check_lifetimes();
comment on table gk_public.tuf_repositories is 'The TUF repository of a team: hashed bins, online key (public half), lifetimes of the online roles.';
grant select on gk_public.tuf_repositories to gk_admin;
grant update (bins_lifetime, publish_delay, resign_window, snapshot_lifetime, targets_lifetime, timestamp_lifetime) on gk_public.tuf_repositories to gk_admin;
grant select on gk_public.tuf_repositories to gk_viewer;

create table gk_public.tuf_roles (
  team_id uuid not null,
  role text not null,
  bin integer,
  version integer default 0 not null,
  expires timestamp with time zone,
  dirty boolean default true not null,
  dirty_since timestamp with time zone default now(),
  dirty_generation bigint default 0 not null,
  constraint tuf_roles_pkey PRIMARY KEY (team_id, role),
  constraint tuf_roles_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.tuf_repositories(team_id) ON DELETE CASCADE,
  constraint tuf_roles_bin_check CHECK (bin >= 0 AND bin <= 16383),
  constraint tuf_roles_check CHECK ((role ~~ 'bins-%'::text) = (bin IS NOT NULL)),
  constraint tuf_roles_check1 CHECK ((version = 0) = (expires IS NULL)),
  constraint tuf_roles_check2 CHECK (dirty = (dirty_since IS NOT NULL)),
  constraint tuf_roles_role_check CHECK ((role = ANY (ARRAY['targets'::text, 'snapshot'::text, 'timestamp'::text])) OR role ~ '^bins-[0-9a-f]{1,4}$'::text),
  constraint tuf_roles_version_check CHECK (version >= 0)
);
CREATE UNIQUE INDEX tuf_roles_bin_idx ON gk_public.tuf_roles USING btree (team_id, bin) WHERE (bin IS NOT NULL);
CREATE INDEX tuf_roles_dirty_idx ON gk_public.tuf_roles USING btree (team_id) WHERE dirty;
CREATE INDEX tuf_roles_expires_idx ON gk_public.tuf_roles USING btree (expires) WHERE (NOT dirty);
comment on table gk_public.tuf_roles is 'Online roles of each TUF repository (targets, snapshot, timestamp, bins-XX): current version, expiry, dirty flag.';
grant select on gk_public.tuf_roles to gk_admin;
grant select on gk_public.tuf_roles to gk_viewer;

create table gk_public.tuf_targets (
  team_id uuid not null,
  path text not null,
  length bigint not null,
  hashes jsonb not null,
  custom jsonb,
  path_hash32 bigint generated always as (gk_private.tuf_path_hash32(path)) stored not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  fragment text generated always as ((((((((('"'::text || replace(replace(path, '\'::text, '\\'::text), '"'::text, '\"'::text)) || '":{'::text) || COALESCE((('"custom":'::text || gk_private.tuf_canonical(custom)) || ','::text), ''::text)) || '"hashes":'::text) ||
CASE
    WHEN ((hashes - 'sha256'::text) = '{}'::jsonb) THEN (('{"sha256":"'::text || (hashes ->> 'sha256'::text)) || '"}'::text)
    ELSE gk_private.tuf_canonical(hashes)
END) || ',"length":'::text) || (length)::text) || '}'::text)) stored not null,
  constraint tuf_targets_pkey PRIMARY KEY (team_id, path),
  constraint tuf_targets_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.tuf_repositories(team_id) ON DELETE CASCADE,
  constraint tuf_targets_custom_rules CHECK (custom IS NULL OR gk_private.tuf_custom_problem(custom) IS NULL),
  constraint tuf_targets_hashes_rules CHECK (gk_private.tuf_hashes_ok(hashes)),
  constraint tuf_targets_length_check CHECK (length >= 0),
  constraint tuf_targets_length_exact CHECK (length <= '9007199254740991'::bigint),
  constraint tuf_targets_path_rules CHECK (gk_private.tuf_path_ok(path))
);
CREATE INDEX tuf_targets_bin_idx ON gk_public.tuf_targets USING btree (team_id, path_hash32);
CREATE TRIGGER _100_check_target BEFORE INSERT OR UPDATE OF path, length, hashes, custom ON gk_public.tuf_targets FOR EACH ROW EXECUTE FUNCTION gk_private.tg_tuf_targets__check_target();
CREATE TRIGGER _500_mark_bins_dirty_delete AFTER DELETE ON gk_public.tuf_targets REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_tuf_targets__mark_bins_dirty();
CREATE TRIGGER _500_mark_bins_dirty_insert AFTER INSERT ON gk_public.tuf_targets REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_tuf_targets__mark_bins_dirty();
CREATE TRIGGER _500_mark_bins_dirty_update AFTER UPDATE ON gk_public.tuf_targets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_tuf_targets__mark_bins_dirty();
comment on table gk_public.tuf_targets is 'Targets of a team''s TUF repository. Insert/update/delete freely: the affected bins are marked dirty and a publish is enqueued.';
comment on column gk_public.tuf_targets.fragment is 'This target''s entry in its bin, as canonical JSON (what is signed); computed from path, length, hashes and custom.';
grant delete, insert, select, update on gk_public.tuf_targets to gk_admin;
grant select on gk_public.tuf_targets to gk_viewer;

create table gk_public.volumes (
  id bigint generated always as identity not null,
  handle uuid default (encode(OVERLAY(OVERLAY(uuid_send(gen_random_uuid()) PLACING SUBSTRING(int8send(((EXTRACT(epoch FROM clock_timestamp()) * (1000)::numeric))::bigint) FROM 3) FROM 1 FOR 6) PLACING set_byte('\x00'::bytea, 0, (112 + (floor((random() * (16)::double precision)))::integer)) FROM 7 FOR 1), 'hex'::text))::uuid not null,
  worker_id uuid not null,
  team_id uuid,
  state text default 'creating'::text not null,
  container_id bigint,
  worker_resource_cache_id bigint,
  worker_base_resource_type_id bigint,
  worker_task_cache_id bigint,
  parent_id bigint,
  parent_state text,
  created_at timestamp with time zone default now() not null,
  state_changed_at timestamp with time zone default now() not null,
  missing_since timestamp with time zone,
  adopted boolean default false not null,
  attempts integer default 0 not null,
  last_error text,
  next_attempt_at timestamp with time zone,
  retry_requested_at timestamp with time zone,
  constraint volumes_pkey PRIMARY KEY (id),
  constraint volumes_id_state_worker_key UNIQUE (id, state, worker_id),
  constraint volumes_worker_handle_key UNIQUE (worker_id, handle),
  constraint volumes_container_id_fkey FOREIGN KEY (container_id) REFERENCES gk_public.containers(id) ON DELETE SET NULL,
  constraint volumes_parent_fkey FOREIGN KEY (parent_id, parent_state, worker_id) REFERENCES gk_public.volumes(id, state, worker_id) ON UPDATE RESTRICT ON DELETE RESTRICT,
  constraint volumes_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE SET NULL,
  constraint volumes_worker_base_resource_type_id_fkey FOREIGN KEY (worker_base_resource_type_id) REFERENCES gk_public.worker_base_resource_types(id) ON DELETE SET NULL,
  constraint volumes_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE CASCADE,
  constraint volumes_worker_resource_cache_id_fkey FOREIGN KEY (worker_resource_cache_id) REFERENCES gk_public.worker_resource_caches(id) ON DELETE SET NULL,
  constraint volumes_worker_task_cache_id_fkey FOREIGN KEY (worker_task_cache_id) REFERENCES gk_public.worker_task_caches(id) ON DELETE SET NULL,
  constraint volumes_adopted_destroying CHECK (NOT adopted OR state = 'destroying'::text),
  constraint volumes_attempts_check CHECK (attempts >= 0),
  constraint volumes_destroying_due CHECK ((state = 'destroying'::text) = (next_attempt_at IS NOT NULL)),
  constraint volumes_last_error_check CHECK (length(last_error) <= 2000),
  constraint volumes_missing_not_creating CHECK (state <> 'creating'::text OR missing_since IS NULL),
  constraint volumes_not_own_parent CHECK (parent_id <> id),
  constraint volumes_parent_pair CHECK ((parent_id IS NULL) = (parent_state IS NULL)),
  constraint volumes_parent_state_check CHECK (parent_state = 'created'::text),
  constraint volumes_state_check CHECK (state = ANY (ARRAY['creating'::text, 'created'::text, 'destroying'::text, 'failed'::text]))
);
CREATE INDEX volumes_container_id_idx ON gk_public.volumes USING btree (container_id) WHERE (container_id IS NOT NULL);
CREATE INDEX volumes_creating_idx ON gk_public.volumes USING btree (worker_id, state_changed_at) WHERE (state = 'creating'::text);
CREATE INDEX volumes_destroying_due_idx ON gk_public.volumes USING btree (worker_id, next_attempt_at) WHERE (state = 'destroying'::text);
CREATE INDEX volumes_failed_idx ON gk_public.volumes USING btree (state_changed_at) WHERE (state = 'failed'::text);
CREATE INDEX volumes_missing_idx ON gk_public.volumes USING btree (missing_since) WHERE (missing_since IS NOT NULL);
CREATE INDEX volumes_ownerless_idx ON gk_public.volumes USING btree (worker_id) WHERE ((state = 'created'::text) AND (container_id IS NULL) AND (worker_resource_cache_id IS NULL) AND (worker_base_resource_type_id IS NULL) AND (worker_task_cache_id IS NULL));
CREATE INDEX volumes_parent_id_idx ON gk_public.volumes USING btree (parent_id) WHERE (parent_id IS NOT NULL);
CREATE INDEX volumes_team_id_idx ON gk_public.volumes USING btree (team_id) WHERE (team_id IS NOT NULL);
CREATE INDEX volumes_worker_base_resource_type_id_idx ON gk_public.volumes USING btree (worker_base_resource_type_id) WHERE (worker_base_resource_type_id IS NOT NULL);
CREATE INDEX volumes_worker_resource_cache_id_idx ON gk_public.volumes USING btree (worker_resource_cache_id) WHERE (worker_resource_cache_id IS NOT NULL);
CREATE INDEX volumes_worker_task_cache_id_idx ON gk_public.volumes USING btree (worker_task_cache_id) WHERE (worker_task_cache_id IS NOT NULL);
CREATE TRIGGER _100_retry_due BEFORE UPDATE OF retry_requested_at ON gk_public.volumes FOR EACH ROW EXECUTE FUNCTION gk_private.tg_volumes__retry_due();
CREATE TRIGGER _500_enqueue_create AFTER INSERT ON gk_public.volumes REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_volumes__enqueue_create();
CREATE TRIGGER _510_activate_on_delete AFTER DELETE ON gk_public.volumes REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_volumes__activate_collector();
CREATE TRIGGER _510_activate_on_update AFTER UPDATE OF container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id ON gk_public.volumes FOR EACH STATEMENT EXECUTE FUNCTION gk_private.tg_volumes__activate_collector();
comment on table gk_public.volumes is '@behavior -insert -update -delete
Volumes on workers. A volume without owners and children is destroyed on its agent, then its row goes.';
grant select on gk_public.volumes to gk_admin;
grant insert (container_id, parent_id, parent_state, team_id, worker_base_resource_type_id, worker_id, worker_resource_cache_id, worker_task_cache_id) on gk_public.volumes to gk_admin;
grant update (container_id, retry_requested_at, worker_base_resource_type_id, worker_resource_cache_id, worker_task_cache_id) on gk_public.volumes to gk_admin;
grant select on gk_public.volumes to gk_viewer;

create table gk_public.worker_base_resource_types (
  id bigint generated always as identity not null,
  worker_id uuid not null,
  base_resource_type_id bigint not null,
  version text default ''::text not null,
  constraint worker_base_resource_types_pkey PRIMARY KEY (id),
  constraint worker_base_resource_types_worker_id_base_resource_type_id_key UNIQUE (worker_id, base_resource_type_id),
  constraint worker_base_resource_types_base_resource_type_id_fkey FOREIGN KEY (base_resource_type_id) REFERENCES gk_public.base_resource_types(id) ON DELETE CASCADE,
  constraint worker_base_resource_types_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE CASCADE,
  constraint worker_base_resource_types_version_check CHECK (length(version) <= 200)
);
CREATE INDEX worker_base_resource_types_type_idx ON gk_public.worker_base_resource_types USING btree (base_resource_type_id);
comment on table gk_public.worker_base_resource_types is '@behavior -insert -update -delete
A base resource type at one version on one worker.';
grant select on gk_public.worker_base_resource_types to gk_admin;
grant select on gk_public.worker_base_resource_types to gk_viewer;

create table gk_public.worker_resource_caches (
  id bigint generated always as identity not null,
  worker_id uuid not null,
  resource_cache_id bigint not null,
  worker_base_resource_type_id bigint,
  constraint worker_resource_caches_pkey PRIMARY KEY (id),
  constraint worker_resource_caches_worker_id_resource_cache_id_key UNIQUE (worker_id, resource_cache_id),
  constraint worker_resource_caches_resource_cache_id_fkey FOREIGN KEY (resource_cache_id) REFERENCES gk_public.resource_caches(id) ON DELETE CASCADE,
  constraint worker_resource_caches_worker_base_resource_type_id_fkey FOREIGN KEY (worker_base_resource_type_id) REFERENCES gk_public.worker_base_resource_types(id) ON DELETE SET NULL,
  constraint worker_resource_caches_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE CASCADE
);
CREATE INDEX worker_resource_caches_cache_idx ON gk_public.worker_resource_caches USING btree (resource_cache_id);
CREATE INDEX worker_resource_caches_wbrt_idx ON gk_public.worker_resource_caches USING btree (worker_base_resource_type_id);
comment on table gk_public.worker_resource_caches is '@behavior -insert -update -delete
A resource cache present on one worker.';
grant select on gk_public.worker_resource_caches to gk_admin;
grant select on gk_public.worker_resource_caches to gk_viewer;

create table gk_public.worker_task_caches (
  id bigint generated always as identity not null,
  worker_id uuid not null,
  team_id uuid not null,
  name text not null,
  constraint worker_task_caches_pkey PRIMARY KEY (id),
  constraint worker_task_caches_worker_id_team_id_name_key UNIQUE (worker_id, team_id, name),
  constraint worker_task_caches_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.teams(id) ON DELETE CASCADE,
  constraint worker_task_caches_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES gk_public.workers(id) ON DELETE CASCADE,
  constraint worker_task_caches_name_check CHECK (length(name) >= 1 AND length(name) <= 500)
);
CREATE INDEX worker_task_caches_team_id_idx ON gk_public.worker_task_caches USING btree (team_id);
comment on table gk_public.worker_task_caches is '@behavior -insert -update -delete
A task''s cache directory on one worker.';
grant select on gk_public.worker_task_caches to gk_admin;
grant select on gk_public.worker_task_caches to gk_viewer;

create table gk_public.workers (
  id uuid default gen_random_uuid() not null,
  name text not null,
  state text default 'landed'::text not null,
  address text,
  heartbeat_ttl interval default '00:01:00'::interval not null,
  last_heartbeat_at timestamp with time zone,
  expires_at timestamp with time zone,
  stalled_since timestamp with time zone,
  agent_version text,
  live_volumes integer,
  dead_volumes integer,
  collector_lease_until timestamp with time zone,
  last_report_at timestamp with time zone,
  enrolled_at timestamp with time zone default now() not null,
  state_changed_at timestamp with time zone default now() not null,
  constraint workers_pkey PRIMARY KEY (id),
  constraint workers_name_key UNIQUE (name),
  constraint workers_address_check CHECK (address ~ '^https://[A-Za-z0-9.:\[\]-]{1,255}:[0-9]{1,5}$'::text),
  constraint workers_agent_version_check CHECK (length(agent_version) <= 100),
  constraint workers_dead_volumes_check CHECK (dead_volumes >= 0),
  constraint workers_heartbeat_ttl_check CHECK (heartbeat_ttl >= '00:00:02'::interval AND heartbeat_ttl <= '01:00:00'::interval),
  constraint workers_live_volumes_check CHECK (live_volumes >= 0),
  constraint workers_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text),
  constraint workers_serving_has_address CHECK ((state <> ALL (ARRAY['running'::text, 'landing'::text, 'retiring'::text])) OR address IS NOT NULL AND expires_at IS NOT NULL),
  constraint workers_stalled_since CHECK ((state = 'stalled'::text) = (stalled_since IS NOT NULL)),
  constraint workers_state_check CHECK (state = ANY (ARRAY['running'::text, 'stalled'::text, 'landing'::text, 'landed'::text, 'retiring'::text]))
);
CREATE INDEX workers_expires_at_idx ON gk_public.workers USING btree (expires_at) WHERE (state = 'running'::text);
comment on table gk_public.workers is '@behavior -insert -update -delete
Build workers: each runs a Groundskeeper agent that owns the volumes on its disk. Deleting (pruning) one cascades to its containers and volumes and revokes its certificate.';
grant delete, select on gk_public.workers to gk_admin;
grant insert (name) on gk_public.workers to gk_admin;
grant update (state, state_changed_at) on gk_public.workers to gk_admin;
grant select on gk_public.workers to gk_viewer;

create view gk_public.bin as
 SELECT 'blob_prefix'::text AS kind,
    b.ref,
    b.team_id,
    b.enqueued_at,
    now() - b.enqueued_at AS age,
    b.attempts,
    b.last_error,
    b.next_attempt_at,
    COALESCE(b.next_attempt_at < now(), false) AS overdue
   FROM gk_private.bin__blob_prefix b
UNION ALL
 SELECT 'certificate'::text AS kind,
    b.ref,
    b.team_id,
    b.enqueued_at,
    now() - b.enqueued_at AS age,
    b.attempts,
    b.last_error,
    b.next_attempt_at,
    COALESCE(b.next_attempt_at < now(), false) AS overdue
   FROM gk_private.bin__certificate b
UNION ALL
 SELECT 'export'::text AS kind,
    b.ref,
    b.team_id,
    b.enqueued_at,
    now() - b.enqueued_at AS age,
    b.attempts,
    b.last_error,
    b.next_attempt_at,
    COALESCE(b.next_attempt_at < now(), false) AS overdue
   FROM gk_private.bin__export b
UNION ALL
 SELECT 'volume'::text AS kind,
    b.ref,
    b.team_id,
    b.enqueued_at,
    now() - b.enqueued_at AS age,
    b.attempts,
    b.last_error,
    b.next_attempt_at,
    COALESCE(b.next_attempt_at < now(), false) AS overdue
   FROM gk_private.bin__volume b;
comment on view gk_public.bin is '@primaryKey kind,ref
Every pending deletion (certificate revocations, blob prefixes...) with its age and last error. Its length goes to zero. Overdue: past its lease or next attempt, so no live task holds it and nobody recorded why (a dead worker, a CA or store that took the worker down with it).';
grant select on gk_public.bin to gk_admin;
grant select on gk_public.bin to gk_viewer;

create view gk_public.bin_summary as
 SELECT kind,
    count(*)::integer AS length,
    min(enqueued_at) AS oldest_enqueued_at,
    EXTRACT(epoch FROM now() - min(enqueued_at))::double precision AS oldest_age_seconds,
    count(*) FILTER (WHERE last_error IS NOT NULL)::integer AS failing,
    count(*) FILTER (WHERE overdue)::integer AS overdue
   FROM gk_public.bin
  GROUP BY kind;
comment on view gk_public.bin_summary is 'Per kind: how many deletions are pending, the oldest one''s age, how many are failing and how many are overdue (past their lease with no live task).';
grant select on gk_public.bin_summary to gk_admin;
grant select on gk_public.bin_summary to gk_viewer;

create view gk_public.director_status as
 SELECT p.team_id,
    t.name AS team_name,
    p.root_version,
    p.root_expires,
    ( SELECT count(*) AS count
           FROM gk_public.robot_directors d
          WHERE d.team_id = p.team_id) AS robots,
    ( SELECT count(*) AS count
           FROM gk_public.robot_directors d
          WHERE d.team_id = p.team_id AND (d.dirty OR (EXISTS ( SELECT 1
                   FROM gk_public.rollout_robots rr
                  WHERE rr.robot_id = d.robot_id AND rr.state = 'pending'::text)))) AS dirty_robots,
    LEAST(( SELECT min(d.dirty_since) AS min
           FROM gk_public.robot_directors d
          WHERE d.team_id = p.team_id AND d.dirty), ( SELECT min(r.launched_at) AS min
           FROM gk_public.rollouts r
          WHERE r.team_id = p.team_id AND r.state = 'launched'::text AND (EXISTS ( SELECT 1
                   FROM gk_public.rollout_robots rr
                  WHERE rr.rollout_id = r.id AND rr.state = 'pending'::text)))) AS oldest_dirty_since,
    ( SELECT min(d.expires) AS min
           FROM gk_public.robot_directors d
          WHERE d.team_id = p.team_id AND NOT d.dirty) AS next_expiry
   FROM gk_public.director_repositories p
     JOIN gk_public.teams t ON t.id = p.team_id;
comment on view gk_public.director_status is 'Per team: director root, robots with director metadata, how many are dirty (flagged, or with a pending rollout row) and since when.';
grant select on gk_public.director_status to gk_admin;
grant select on gk_public.director_status to gk_viewer;

create view gk_public.export_counts as
 SELECT state,
    delete_requested_at IS NOT NULL AS doomed,
    count(*)::integer AS exports
   FROM gk_public.exports e
  WHERE state <> 'deleted'::text
  GROUP BY state, (delete_requested_at IS NOT NULL);
comment on view gk_public.export_counts is 'Export records that are not deleted, by state and whether they are marked for deletion.';
grant select on gk_public.export_counts to gk_admin;
grant select on gk_public.export_counts to gk_viewer;

create view gk_public.export_node_load as
 SELECT n.id,
    w.name AS worker_name,
    n.address,
    n.state,
    n.last_heartbeat_at,
    n.expires_at > now() AS fresh,
    n.attachments,
    ( SELECT count(*)::integer AS count
           FROM gk_public.exports e
          WHERE e.node_id = n.id AND e.state = 'live'::text) AS live_exports
   FROM gk_public.export_nodes n
     LEFT JOIN gk_public.workers w ON w.id = n.worker_id;
comment on view gk_public.export_node_load is 'Export nodes with their live export count and heartbeat freshness.';
grant select on gk_public.export_node_load to gk_admin;
grant select on gk_public.export_node_load to gk_viewer;

create view gk_public.rollout_summaries as
 SELECT r.id AS rollout_id,
    r.team_id,
    r.name,
    r.state,
    r.launched_at,
    r.ended_at,
    r.result,
    count(rr.robot_id) AS robots,
    count(rr.robot_id) FILTER (WHERE rr.state = 'pending'::text) AS pending,
    count(rr.robot_id) FILTER (WHERE rr.state = 'scheduled'::text) AS scheduled,
    count(rr.robot_id) FILTER (WHERE rr.state = 'accepted'::text) AS accepted,
    count(rr.robot_id) FILTER (WHERE rr.state = 'completed'::text) AS completed,
    count(rr.robot_id) FILTER (WHERE rr.state = 'failed'::text) AS failed,
    count(rr.robot_id) FILTER (WHERE rr.state = 'skipped'::text) AS skipped,
    count(rr.robot_id) FILTER (WHERE rr.state = 'cancelled'::text) AS cancelled
   FROM gk_public.rollouts r
     LEFT JOIN gk_public.rollout_robots rr ON rr.rollout_id = r.id
  GROUP BY r.id;
comment on view gk_public.rollout_summaries is 'Per rollout: its state and how many robots are in each state.';
grant select on gk_public.rollout_summaries to gk_admin;
grant select on gk_public.rollout_summaries to gk_viewer;

create view gk_public.saga_summary as
 SELECT name,
    state,
    count(*)::integer AS sagas,
    EXTRACT(epoch FROM now() - min(created_at))::double precision AS oldest_age_seconds,
    count(*) FILTER (WHERE undo_error IS NOT NULL)::integer AS undo_failing
   FROM gk_public.sagas s
  WHERE finished_at IS NULL
  GROUP BY name, state;
comment on view gk_public.saga_summary is 'Sagas in progress by name and state: how many, the oldest one''s age, how many have a failing undo.';
grant select on gk_public.saga_summary to gk_admin;
grant select on gk_public.saga_summary to gk_viewer;

create view gk_public.tuf_repository_status as
 SELECT p.team_id,
    t.name AS team_name,
    p.bit_length,
    1 << p.bit_length::integer AS bins,
    p.root_version,
    p.root_expires,
    ( SELECT count(*) AS count
           FROM gk_public.tuf_roles ro
          WHERE ro.team_id = p.team_id AND ro.dirty) AS dirty_roles,
    tg.version AS targets_version,
    tg.expires AS targets_expires,
    sn.version AS snapshot_version,
    sn.expires AS snapshot_expires,
    ts.version AS timestamp_version,
    ts.expires AS timestamp_expires,
    ( SELECT min(ro.expires) AS min
           FROM gk_public.tuf_roles ro
          WHERE ro.team_id = p.team_id AND ro.bin IS NOT NULL) AS bins_next_expiry,
    c.timestamp_version AS published_timestamp_version,
    c.uploaded_at AS last_uploaded_at,
    ( SELECT count(*) AS count
           FROM gk_public.tuf_metadata m
          WHERE m.team_id = p.team_id AND m.uploaded_at IS NULL) AS pending_uploads,
    p.last_publish_error,
    p.publish_failing_since,
    p.publish_failures,
    p.last_published_at
   FROM gk_public.tuf_repositories p
     JOIN gk_public.teams t ON t.id = p.team_id
     LEFT JOIN gk_public.tuf_roles tg ON tg.team_id = p.team_id AND tg.role = 'targets'::text
     LEFT JOIN gk_public.tuf_roles sn ON sn.team_id = p.team_id AND sn.role = 'snapshot'::text
     LEFT JOIN gk_public.tuf_roles ts ON ts.team_id = p.team_id AND ts.role = 'timestamp'::text
     LEFT JOIN gk_private.tuf_upload_cursors c ON c.team_id = p.team_id;
comment on view gk_public.tuf_repository_status is 'Per team: dirty roles, current and published versions, expiries, uploads pending, and a failing publish (error, since when, how many attempts).';
grant select on gk_public.tuf_repository_status to gk_admin;
grant select on gk_public.tuf_repository_status to gk_viewer;

create view gk_public.volume_counts as
 SELECT w.name AS worker_name,
    v.worker_id,
    v.state,
    count(*)::integer AS volumes,
    count(*) FILTER (WHERE v.missing_since IS NOT NULL)::integer AS missing,
    count(*) FILTER (WHERE v.last_error IS NOT NULL AND v.state = 'destroying'::text)::integer AS failing,
    min(v.state_changed_at) AS oldest_state_change_at
   FROM gk_public.volumes v
     JOIN gk_public.workers w ON w.id = v.worker_id
  GROUP BY w.name, v.worker_id, v.state;
comment on view gk_public.volume_counts is '@primaryKey worker_id,state
Volumes per worker and state: how many, how many missing on the agent, how many failing to be destroyed.';
grant select on gk_public.volume_counts to gk_admin;
grant select on gk_public.volume_counts to gk_viewer;

CREATE OR REPLACE FUNCTION gk_public.activate_reconciler(task text)
 RETURNS gk_public.reconcilers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v_row gk_public.reconcilers;
begin
  if task is null or length(task) > 200 then
    raise exception 'task must be the name of a reconciler' using errcode = '22023';
  end if;
  perform gk_private.reconciler_activate(task);
  select * into v_row from gk_public.reconcilers r where r.name = activate_reconciler.task;
  return v_row;
end;
$function$;
comment on function gk_public.activate_reconciler(text) is 'Runs a periodic reconciler now. Its activation is enqueued with the crontab''s job key, so repeated calls do not pile up.';
grant execute on function gk_public.activate_reconciler(text) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.check_certificate_request(public_key_pem text, valid_for interval)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
begin
  if valid_for is null or valid_for < interval '1 hour' or valid_for > interval '10 years' then
    raise exception 'valid_for must be between 1 hour and 10 years (got %)', valid_for using errcode = '22023';
  end if;
  if public_key_pem is not null and public_key_pem !~ '^\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----\s*$' then
    raise exception 'public_key_pem must be a PEM "PUBLIC KEY" (SPKI)' using errcode = '22023';
  end if;
end;
$function$;
grant execute on function gk_public.check_certificate_request(text,interval) to gk_admin;
grant execute on function gk_public.check_certificate_request(text,interval) to gk_viewer;
grant execute on function gk_public.check_certificate_request(text,interval) to public;

CREATE OR REPLACE FUNCTION gk_public.create_provisioning_credential(team_id uuid, name text, valid_for interval DEFAULT '365 days'::interval)
 RETURNS gk_public.provisioning_credentials
 LANGUAGE plpgsql
AS $function$
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
$function$;
comment on function gk_public.create_provisioning_credential(uuid,text,interval) is 'Creates a provisioning credential; its client_auth and provisioning certificates are issued by a task.';
grant execute on function gk_public.create_provisioning_credential(uuid,text,interval) to gk_admin;
grant execute on function gk_public.create_provisioning_credential(uuid,text,interval) to gk_viewer;
grant execute on function gk_public.create_provisioning_credential(uuid,text,interval) to public;

CREATE OR REPLACE FUNCTION gk_public.create_volume(worker_name text, parent_handle uuid DEFAULT NULL::uuid, container_id bigint DEFAULT NULL::bigint, worker_resource_cache_id bigint DEFAULT NULL::bigint, worker_base_resource_type_id bigint DEFAULT NULL::bigint, worker_task_cache_id bigint DEFAULT NULL::bigint, team_id uuid DEFAULT NULL::uuid)
 RETURNS gk_public.volumes
 LANGUAGE plpgsql
AS $function$
declare
  v_worker gk_public.workers;
  v_parent gk_public.volumes;
  v gk_public.volumes;
begin
  select * into v_worker from gk_public.workers w where w.name = create_volume.worker_name;
  if not found then
    raise exception 'worker % not found', worker_name using errcode = 'P0002';
  end if;
  if v_worker.state <> 'running' then
    raise exception 'worker % is %: volumes are only created on running workers', v_worker.name, v_worker.state
      using errcode = '55000';
  end if;
  if num_nonnulls(container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id) = 0 then
    raise exception 'a volume needs an owner (container, worker resource cache, worker base resource type or task cache): without one it is garbage at once'
      using errcode = '22023';
  end if;
  if parent_handle is not null then
    select * into v_parent from gk_public.volumes p where p.worker_id = v_worker.id and p.handle = parent_handle;
    if not found then
      raise exception 'parent volume % not found on worker %', parent_handle, v_worker.name using errcode = 'P0002';
    end if;
    if v_parent.state <> 'created' then
      raise exception 'parent volume % is %: a copy-on-write child needs a created parent', parent_handle, v_parent.state
        using errcode = '55000';
    end if;
  end if;
  begin
    insert into gk_public.volumes (worker_id, team_id, container_id, worker_resource_cache_id, worker_base_resource_type_id,
                                   worker_task_cache_id, parent_id, parent_state)
    values (v_worker.id, create_volume.team_id, create_volume.container_id, create_volume.worker_resource_cache_id,
            create_volume.worker_base_resource_type_id, create_volume.worker_task_cache_id, v_parent.id,
            case when v_parent.id is not null then 'created' end)
    returning * into v;
  exception when foreign_key_violation then
    -- Checked above, so the parent changed state in between: the composite key decided.
    if sqlerrm like '%volumes_parent_fkey%' then
      raise exception 'parent volume % is being destroyed: a copy-on-write child needs a created parent', parent_handle
        using errcode = '55000';
    end if;
    raise;
  end;
  return v;
end;
$function$;
comment on function gk_public.create_volume(text,uuid,bigint,bigint,bigint,bigint,uuid) is 'Creates a volume on a running worker (empty, or a copy-on-write child of a created volume on the same worker) with at least one owner; the agent makes it shortly.';
grant execute on function gk_public.create_volume(text,uuid,bigint,bigint,bigint,bigint,uuid) to gk_admin;
grant execute on function gk_public.create_volume(text,uuid,bigint,bigint,bigint,bigint,uuid) to gk_viewer;
grant execute on function gk_public.create_volume(text,uuid,bigint,bigint,bigint,bigint,uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.download_certificate(id uuid)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
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
$function$;
comment on function gk_public.download_certificate(uuid) is 'The certificate PEM (records downloaded_at). Null while the CA has not handed it over yet: call again shortly.';
grant execute on function gk_public.download_certificate(uuid) to gk_admin;
grant execute on function gk_public.download_certificate(uuid) to gk_viewer;
grant execute on function gk_public.download_certificate(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.enroll_worker(name text, public_key_pem text, valid_for interval DEFAULT '365 days'::interval)
 RETURNS gk_public.certificates
 LANGUAGE plpgsql
AS $function$
declare
  v_worker uuid;
  v_cert gk_public.certificates;
begin
  if enroll_worker.name is null or enroll_worker.name !~ '^[a-z0-9][a-z0-9._-]{0,62}$' then
    raise exception 'worker name must be 1–63 characters of a-z, 0-9, ".", "_", "-" (got %)', coalesce(enroll_worker.name, 'null')
      using errcode = '22023';
  end if;
  if public_key_pem is null then
    raise exception 'public_key_pem is required: the agent keeps its own private key' using errcode = '22023';
  end if;
  perform gk_public.check_certificate_request(public_key_pem, valid_for);
  select w.id into v_worker from gk_public.workers w where w.name = enroll_worker.name;
  if v_worker is null then
    insert into gk_public.workers (name) values (enroll_worker.name)
    on conflict on constraint workers_name_key do nothing
    returning id into v_worker;
    if v_worker is null then
      select w.id into v_worker from gk_public.workers w where w.name = enroll_worker.name;
    end if;
  end if;
  insert into gk_public.certificates (worker_id, profile, public_key_pem, not_after)
  values (v_worker, 'worker', enroll_worker.public_key_pem, date_trunc('second', now() + valid_for))
  returning * into v_cert;
  return v_cert;
end;
$function$;
comment on function gk_public.enroll_worker(text,text,interval) is 'Enrols a build worker (creating it, landed) and requests its agent''s certificate for the given public key; download it with downloadCertificate. Re-enrolling revokes the worker''s previous certificates.';
grant execute on function gk_public.enroll_worker(text,text,interval) to gk_admin;
grant execute on function gk_public.enroll_worker(text,text,interval) to gk_viewer;
grant execute on function gk_public.enroll_worker(text,text,interval) to public;

CREATE OR REPLACE FUNCTION gk_public.expunge_export_node(id uuid)
 RETURNS gk_public.export_nodes
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v gk_public.export_nodes;
begin
  update gk_public.export_nodes n set state = 'expunged', expunged_at = now()
   where n.id = expunge_export_node.id and n.state = 'in_service'
  returning * into v;
  if not found then
    select * into v from gk_public.export_nodes n where n.id = expunge_export_node.id;
    if not found then
      raise exception 'export node % not found', id using errcode = 'P0002';
    end if;
    return v;
  end if;
  perform gk_private.reconciler_activate('exports__coordinate');
  return v;
end;
$function$;
comment on function gk_public.expunge_export_node(uuid) is 'Expunges an export node (permanent): its exports are deleted and re-created on in-service nodes by the coordinator, which runs now.';
grant execute on function gk_public.expunge_export_node(uuid) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.force_destroy_volume(handle uuid)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  v_root bigint;
  v_count int;
begin
  select v.id into v_root from gk_public.volumes v where v.handle = force_destroy_volume.handle;
  if v_root is null then
    raise exception 'volume % not found', handle using errcode = 'P0002';
  end if;
  with recursive tree as (
    select v_root as id
    union
    select c.id from gk_public.volumes c join tree t on c.parent_id = t.id),
  cut as (
    update gk_public.volumes v
       set container_id = null, worker_resource_cache_id = null, worker_base_resource_type_id = null, worker_task_cache_id = null
      from tree t where v.id = t.id
    returning 1)
  select count(*)::int into v_count from cut;
  return v_count;
end;
$function$;
comment on function gk_public.force_destroy_volume(uuid) is 'Destroys a volume and all its copy-on-write descendants, whatever owns them.';
grant execute on function gk_public.force_destroy_volume(uuid) to gk_admin;
grant execute on function gk_public.force_destroy_volume(uuid) to gk_viewer;
grant execute on function gk_public.force_destroy_volume(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.land_worker(name text)
 RETURNS gk_public.workers
 LANGUAGE plpgsql
AS $function$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state in ('landing', 'landed') then
    return v;
  end if;
  if v.state <> 'running' then
    raise exception 'worker % is %: only a running worker can land', v.name, v.state using errcode = '55000';
  end if;
  update gk_public.workers w set state = 'landing', state_changed_at = now() where w.id = v.id returning * into v;
  return v;
end;
$function$;
comment on function gk_public.land_worker(text) is 'Lands a running worker: no new volumes; it becomes landed once no running build uses it.';
grant execute on function gk_public.land_worker(text) to gk_admin;
grant execute on function gk_public.land_worker(text) to gk_viewer;
grant execute on function gk_public.land_worker(text) to public;

CREATE OR REPLACE FUNCTION gk_public.prune_worker(name text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state = 'running' then
    raise exception 'worker % is running: land or retire it (or stop its agent and let it stall) first', v.name
      using errcode = '55000';
  end if;
  delete from gk_public.workers w where w.id = v.id;
  return true;
end;
$function$;
comment on function gk_public.prune_worker(text) is 'Deletes a worker that is not running: its rows cascade and its certificate is revoked. If its agent comes back it must be enrolled again.';
grant execute on function gk_public.prune_worker(text) to gk_admin;
grant execute on function gk_public.prune_worker(text) to gk_viewer;
grant execute on function gk_public.prune_worker(text) to public;

CREATE OR REPLACE FUNCTION gk_public.reconcilers_last_activation(r gk_public.reconcilers)
 RETURNS gk_public.activations
 LANGUAGE sql
 STABLE
AS $function$
  select a.* from gk_public.activations a where a.task = r.name order by a.started_at desc limit 1;
$function$;
comment on function gk_public.reconcilers_last_activation(gk_public.reconcilers) is 'The latest activation of this reconciler.';
grant execute on function gk_public.reconcilers_last_activation(gk_public.reconcilers) to gk_admin;
grant execute on function gk_public.reconcilers_last_activation(gk_public.reconcilers) to gk_viewer;
grant execute on function gk_public.reconcilers_last_activation(gk_public.reconcilers) to public;

CREATE OR REPLACE FUNCTION gk_public.request_certificate(robot_id uuid, public_key_pem text DEFAULT NULL::text, valid_for interval DEFAULT '365 days'::interval, csr_pem text DEFAULT NULL::text)
 RETURNS gk_public.certificates
 LANGUAGE plpgsql
AS $function$
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
$function$;
comment on function gk_public.request_certificate(uuid,text,interval,text) is 'Requests a robot certificate; a task issues it at the CA. The holder''s key comes as a public key (local CA) or a CSR (any CA); without either the CA generates the key pair.';
grant execute on function gk_public.request_certificate(uuid,text,interval,text) to gk_admin;
grant execute on function gk_public.request_certificate(uuid,text,interval,text) to gk_viewer;
grant execute on function gk_public.request_certificate(uuid,text,interval,text) to public;

CREATE OR REPLACE FUNCTION gk_public.request_export(resource_type gk_public.export_resource_type, resource_id uuid)
 RETURNS gk_public.exports
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v gk_public.exports;
begin
  if not gk_private.exports_resource_exists(resource_type, resource_id) then
    raise exception '% % not found', resource_type, resource_id using errcode = 'P0002';
  end if;
  select * into v from gk_public.exports e
   where e.resource_type = request_export.resource_type and e.resource_id = request_export.resource_id and e.state <> 'deleted';
  if found then
    raise exception '% % already has export % (%)', resource_type, resource_id, v.id, v.state
      using errcode = '23505', constraint = 'exports_one_per_resource';
  end if;
  insert into gk_public.exports (resource_type, resource_id) values (resource_type, resource_id) returning * into v;
  perform gk_private.reconciler_activate('exports__coordinate');
  return v;
end;
$function$;
comment on function gk_public.request_export(gk_public.export_resource_type,uuid) is 'Requests the export of a resource now (the coordinator also does this for every resource on its own). Refused when the resource already has one.';
grant execute on function gk_public.request_export(gk_public.export_resource_type,uuid) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.resolve_certificate(id uuid, serial text DEFAULT NULL::text)
 RETURNS gk_public.certificates
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;
comment on function gk_public.resolve_certificate(uuid,text) is 'For an unresolved certificate (its CA cannot be asked what it issued): the serial the CA issued under this certificate''s id, or null when it issued nothing. A revoking one is then revoked; an issuing one has what the CA issued revoked and is issued anew.';
grant execute on function gk_public.resolve_certificate(uuid,text) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.retire_worker(name text)
 RETURNS gk_public.workers
 LANGUAGE plpgsql
AS $function$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state = 'retiring' then
    return v;
  end if;
  if v.state not in ('running', 'landing') then
    raise exception 'worker % is %: prune it instead', v.name, v.state using errcode = '55000';
  end if;
  update gk_public.workers w set state = 'retiring', state_changed_at = now() where w.id = v.id returning * into v;
  return v;
end;
$function$;
comment on function gk_public.retire_worker(text) is 'Retires a worker: once no running build uses it, it is deleted (its volumes and containers go, its certificate is revoked).';
grant execute on function gk_public.retire_worker(text) to gk_admin;
grant execute on function gk_public.retire_worker(text) to gk_viewer;
grant execute on function gk_public.retire_worker(text) to public;

CREATE OR REPLACE FUNCTION gk_public.retry_bin_item(kind text, ref text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v_ok boolean;
begin
  if not exists (select 1 from gk_public.bin_kinds b where b.kind = retry_bin_item.kind) then
    raise exception 'unknown bin item kind % (known: %)', kind,
      (select string_agg(b.kind, ', ' order by b.kind) from gk_public.bin_kinds b) using errcode = '22023';
  end if;
  if ref is null or length(ref) > 1024 then
    raise exception 'bin item ref must be 1 to 1024 characters' using errcode = '22023';
  end if;
  execute format('select gk_private.%I($1)', 'bin_retry__' || kind) into v_ok using ref;
  if not coalesce(v_ok, false) then
    raise exception 'no pending bin item % %', kind, ref using errcode = 'P0002';
  end if;
  return true;
end;
$function$;
comment on function gk_public.retry_bin_item(text,text) is 'Retries a pending bin item now (e.g. after the CA or blob store came back).';
grant execute on function gk_public.retry_bin_item(text,text) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.retry_saga(id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
begin
  update gk_public.sagas s set retry_requested_at = clock_timestamp() where s.id = retry_saga.id and s.finished_at is null;
  if not found then
    raise exception 'no unfinished saga %', id using errcode = 'P0002';
  end if;
  return true;
end;
$function$;
comment on function gk_public.retry_saga(uuid) is 'Drives an unfinished saga again now (after its job gave up, or once the cause of a failing undo is fixed).';
grant execute on function gk_public.retry_saga(uuid) to gk_admin;
grant execute on function gk_public.retry_saga(uuid) to gk_viewer;
grant execute on function gk_public.retry_saga(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.retry_volume_destroy(handle uuid)
 RETURNS gk_public.volumes
 LANGUAGE plpgsql
AS $function$
declare
  v gk_public.volumes;
begin
  update gk_public.volumes x set retry_requested_at = clock_timestamp()
   where x.handle = retry_volume_destroy.handle and x.state = 'destroying'
  returning * into v;
  if not found then
    raise exception 'no volume % is being destroyed', handle using errcode = 'P0002';
  end if;
  return v;
end;
$function$;
comment on function gk_public.retry_volume_destroy(uuid) is 'Retries destroying a volume now (after its agent or disk was fixed).';
grant execute on function gk_public.retry_volume_destroy(uuid) to gk_admin;
grant execute on function gk_public.retry_volume_destroy(uuid) to gk_viewer;
grant execute on function gk_public.retry_volume_destroy(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.revoke_provisioning_credential(id uuid)
 RETURNS gk_public.provisioning_credentials
 LANGUAGE plpgsql
AS $function$
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
$function$;
comment on function gk_public.revoke_provisioning_credential(uuid) is 'Revokes a provisioning credential; both of its certificates go to the bin and are revoked at the CA.';
grant execute on function gk_public.revoke_provisioning_credential(uuid) to gk_admin;
grant execute on function gk_public.revoke_provisioning_credential(uuid) to gk_viewer;
grant execute on function gk_public.revoke_provisioning_credential(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.revoke_robot_certificates(robot_id uuid, reason text DEFAULT 'keyCompromise'::text)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  n bigint;
begin
  if not exists (select 1 from gk_public.robots r where r.id = revoke_robot_certificates.robot_id) then
    raise exception 'robot % not found', revoke_robot_certificates.robot_id using errcode = 'P0002';
  end if;
  if reason is null or reason not in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation') then
    raise exception 'reason must be unspecified, keyCompromise, superseded or cessationOfOperation (got %)', coalesce(reason, 'null')
      using errcode = '22023';
  end if;
  with revoked as (
    update gk_public.certificates c set status = 'revoking', revocation_reason = revoke_robot_certificates.reason
     where c.robot_id = revoke_robot_certificates.robot_id and c.status in ('issuing', 'issued')
    returning 1)
  select count(*) into n from revoked;
  return n;
end;
$function$;
comment on function gk_public.revoke_robot_certificates(uuid,text) is 'Revokes every live certificate of a robot now (a compromised robot): refused by the robot API at once, revoked at the CA by a task.';
grant execute on function gk_public.revoke_robot_certificates(uuid,text) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.rollout_cancel(rollout_id uuid, reason text DEFAULT NULL::text)
 RETURNS gk_public.rollouts
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v gk_public.rollouts;
  v_reason text := coalesce(nullif(left(reason, 500), ''), 'cancelled by an operator');
begin
  select * into v from gk_public.rollouts r where r.id = rollout_cancel.rollout_id for no key update;
  if not found then
    raise exception 'rollout % not found', rollout_id using errcode = 'P0002';
  end if;
  if v.state not in ('prepared', 'launched') then
    raise exception 'rollout % has already ended (%)', rollout_id, v.state using errcode = '55000';
  end if;
  perform gk_private.rollouts_team_lock(v.team_id);
  perform 1 from gk_public.rollout_robots rr
   where rr.rollout_id = v.id and rr.state in ('pending', 'scheduled', 'accepted')
   order by rr.robot_id for update;
  update gk_public.rollout_robots rr
     set state = 'cancelled', result = 'rollout cancelled: ' || v_reason, updated_at = now()
   where rr.rollout_id = v.id and rr.state in ('pending', 'scheduled', 'accepted');
  update gk_public.rollouts r set state = 'cancelled', ended_at = now(), result = 'cancelled: ' || v_reason
   where r.id = v.id returning * into v;
  return v;
end;
$function$;
comment on function gk_public.rollout_cancel(uuid,text) is 'Cancels a prepared or launched rollout: robots that have not finished are cancelled and their director targets withdrawn.';
grant execute on function gk_public.rollout_cancel(uuid,text) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.rollout_create(team_id uuid, name text, target_type text, images jsonb, group_id uuid DEFAULT NULL::uuid, robot_ids uuid[] DEFAULT NULL::uuid[], max_failed_robots integer DEFAULT NULL::integer, robot_deadline interval DEFAULT NULL::interval)
 RETURNS gk_public.rollouts
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v gk_public.rollouts;
begin
  if images is null or jsonb_typeof(images) <> 'array' or jsonb_array_length(images) not between 1 and 64 then
    raise exception 'images must be a JSON array of 1 to 64 {hardwareId, imageId}' using errcode = '22023';
  end if;
  if exists (select 1 from jsonb_array_elements(images) x
              where jsonb_typeof(x) <> 'object' or jsonb_typeof(x -> 'hardwareId') <> 'string'
                 or jsonb_typeof(x -> 'imageId') <> 'string'
                 or (x ->> 'imageId') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') then
    raise exception 'each image must be {"hardwareId": text, "imageId": uuid}' using errcode = '22023';
  end if;
  if (target_type = 'selected_robots') <> (robot_ids is not null) then
    raise exception 'robot_ids are given exactly for a selected_robots rollout' using errcode = '22023';
  end if;
  if robot_ids is not null and cardinality(robot_ids) not between 1 and 100000 then
    raise exception 'robot_ids must list 1 to 100,000 robots' using errcode = '22023';
  end if;
  if (target_type = 'group') <> (group_id is not null) then
    raise exception 'group_id is given exactly for a group rollout' using errcode = '22023';
  end if;

  insert into gk_public.rollouts (team_id, name, target_type, group_id, max_failed_robots, robot_deadline)
  values (rollout_create.team_id, rollout_create.name, rollout_create.target_type, rollout_create.group_id,
          rollout_create.max_failed_robots, coalesce(rollout_create.robot_deadline, interval '14 days'))
  returning * into v;
  insert into gk_public.rollout_images (team_id, rollout_id, hardware_id, image_id)
  select v.team_id, v.id, x ->> 'hardwareId', (x ->> 'imageId')::uuid from jsonb_array_elements(images) x;
  if robot_ids is not null then
    insert into gk_public.rollout_selected_robots (team_id, rollout_id, robot_id)
    select distinct v.team_id, v.id, r from unnest(robot_ids) r;
  end if;
  return v;
end;
$function$;
comment on function gk_public.rollout_create(uuid,text,text,jsonb,uuid,uuid[],integer,interval) is 'Creates a prepared rollout of a team: target (group, hardware_id_match, selected_robots), images [{hardwareId, imageId}], failure threshold.';
grant execute on function gk_public.rollout_create(uuid,text,text,jsonb,uuid,uuid[],integer,interval) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.rollout_launch(rollout_id uuid)
 RETURNS gk_public.rollouts
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v gk_public.rollouts;
begin
  select * into v from gk_public.rollouts r where r.id = rollout_launch.rollout_id for no key update;
  if not found then
    raise exception 'rollout % not found', rollout_id using errcode = 'P0002';
  end if;
  if v.state <> 'prepared' then
    raise exception 'rollout % is %, only a prepared rollout can be launched', rollout_id, v.state using errcode = '55000';
  end if;
  if v.target_type = 'group' and v.group_id is null then
    raise exception 'the group of rollout % was deleted', rollout_id using errcode = '55000';
  end if;
  perform gk_private.rollouts_team_lock(v.team_id);

  -- One statement: the targeted robots (each branch within the rollout's team), their older
  -- unfinished rows superseded, then their pending rows inserted (after the supersession: the
  -- insert reads its count), so the statement triggers see both and mark no director row.
  with targets as materialized (
    select m.robot_id from gk_public.robot_group_members m
     where v.target_type = 'group' and m.group_id = v.group_id and m.team_id = v.team_id
    union
    select e.robot_id from gk_public.ecus e
      join gk_public.rollout_images ri on ri.rollout_id = v.id and ri.team_id = v.team_id and ri.hardware_id = e.hardware_id
     where v.target_type = 'hardware_id_match' and e.team_id = v.team_id
    union
    select s.robot_id from gk_public.rollout_selected_robots s
     where v.target_type = 'selected_robots' and s.rollout_id = v.id and s.team_id = v.team_id
  ), superseded as (
    update gk_public.rollout_robots rr
       set state = 'skipped', result = format('superseded by rollout %s (%s)', v.name, v.id), updated_at = now()
      from targets t
     where rr.robot_id = t.robot_id and rr.state in ('pending', 'scheduled', 'accepted') and rr.team_id = v.team_id
    returning rr.robot_id
  )
  insert into gk_public.rollout_robots (team_id, rollout_id, robot_id)
  select v.team_id, v.id, t.robot_id from targets t
   where (select count(*) from superseded) >= 0
   order by t.robot_id;

  update gk_public.rollouts r set state = 'launched', launched_at = now() where r.id = v.id returning * into v;
  -- A rollout that reached no robot ends at the processor's next pass.
  perform gk_private.rollouts_schedule_processing();
  return v;
end;
$function$;
comment on function gk_public.rollout_launch(uuid) is 'Launches a prepared rollout: its robots get pending rows (one statement), which make their director metadata dirty.';
grant execute on function gk_public.rollout_launch(uuid) to gk_admin;

CREATE OR REPLACE FUNCTION gk_public.sagas_in_progress(name text DEFAULT NULL::text)
 RETURNS SETOF gk_public.sagas
 LANGUAGE sql
 STABLE
AS $function$
  select s.* from gk_public.sagas s
   where s.finished_at is null and (sagas_in_progress.name is null or s.name = sagas_in_progress.name)
   order by s.created_at
$function$;
comment on function gk_public.sagas_in_progress(text) is 'Sagas running or unwinding, oldest first (optionally of one saga name).';
grant execute on function gk_public.sagas_in_progress(text) to gk_admin;
grant execute on function gk_public.sagas_in_progress(text) to gk_viewer;
grant execute on function gk_public.sagas_in_progress(text) to public;

CREATE OR REPLACE FUNCTION gk_public.team_blob_prefix(team_id uuid)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE STRICT
AS $function$
  select 'teams/' || team_id::text || '/';
$function$;
comment on function gk_public.team_blob_prefix(uuid) is 'The blob store prefix holding a team''s objects; purged when the team is deleted.';
grant execute on function gk_public.team_blob_prefix(uuid) to gk_admin;
grant execute on function gk_public.team_blob_prefix(uuid) to gk_viewer;
grant execute on function gk_public.team_blob_prefix(uuid) to public;

CREATE OR REPLACE FUNCTION gk_public.tuf_add_targets(team_id uuid, targets jsonb)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  n int;
begin
  if targets is null or jsonb_typeof(targets) <> 'array' then
    raise exception 'targets must be a JSON array of {path, length, hashes, custom}' using errcode = '22023';
  end if;
  if not exists (select 1 from gk_public.tuf_repositories p where p.team_id = tuf_add_targets.team_id) then
    raise exception 'team % has no TUF repository (run: groundskeeper tuf init)', tuf_add_targets.team_id using errcode = '22023';
  end if;
  insert into gk_public.tuf_targets as t (team_id, path, length, hashes, custom)
  select tuf_add_targets.team_id, x.path, x.length, x.hashes, x.custom
    from jsonb_to_recordset(targets) as x (path text, length bigint, hashes jsonb, custom jsonb)
  on conflict on constraint tuf_targets_pkey do update
     set length = excluded.length, hashes = excluded.hashes, custom = excluded.custom, updated_at = now()
   where (t.length, t.hashes, t.custom) is distinct from (excluded.length, excluded.hashes, excluded.custom);
  get diagnostics n = row_count;
  return n;
end;
$function$;
comment on function gk_public.tuf_add_targets(uuid,jsonb) is 'Adds (or updates) a batch of targets: [{path, length, hashes: {sha256: hex}, custom}]. Returns rows written.';
grant execute on function gk_public.tuf_add_targets(uuid,jsonb) to gk_admin;
grant execute on function gk_public.tuf_add_targets(uuid,jsonb) to gk_viewer;
grant execute on function gk_public.tuf_add_targets(uuid,jsonb) to public;

CREATE OR REPLACE FUNCTION gk_public.tuf_bin_of(path text, bit_length integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select (gk_private.tuf_path_hash32(path) >> (32 - bit_length))::int $function$;
comment on function gk_public.tuf_bin_of(text,integer) is 'The hashed bin (TAP 15) of a target path: first 32 bits of sha256(path) >> (32 - bit_length).';
grant execute on function gk_public.tuf_bin_of(text,integer) to gk_admin;
grant execute on function gk_public.tuf_bin_of(text,integer) to gk_viewer;
grant execute on function gk_public.tuf_bin_of(text,integer) to public;

CREATE OR REPLACE FUNCTION gk_public.tuf_remove_targets(team_id uuid, paths text[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  n int;
begin
  delete from gk_public.tuf_targets t where t.team_id = tuf_remove_targets.team_id and t.path = any(paths);
  get diagnostics n = row_count;
  return n;
end;
$function$;
comment on function gk_public.tuf_remove_targets(uuid,text[]) is 'Removes a batch of targets by path. Returns rows removed.';
grant execute on function gk_public.tuf_remove_targets(uuid,text[]) to gk_admin;
grant execute on function gk_public.tuf_remove_targets(uuid,text[]) to gk_viewer;
grant execute on function gk_public.tuf_remove_targets(uuid,text[]) to public;
-- ===============================================================================================
-- schema gk_private

create schema gk_private;
grant usage on schema gk_private to gk_api;
grant usage on schema gk_private to gk_peer;

create table gk_private.activation_tasks (
  task text not null,
  last_activation_id bigint,
  last_success_id bigint,
  succeeded bigint default 0 not null,
  failed bigint default 0 not null,
  constraint activation_tasks_pkey PRIMARY KEY (task),
  constraint activation_tasks_last_activation_id_fkey FOREIGN KEY (last_activation_id) REFERENCES gk_public.activations(id) ON DELETE SET NULL,
  constraint activation_tasks_last_success_id_fkey FOREIGN KEY (last_success_id) REFERENCES gk_public.activations(id) ON DELETE SET NULL,
  constraint activation_tasks_failed_check CHECK (failed >= 0),
  constraint activation_tasks_succeeded_check CHECK (succeeded >= 0)
);
comment on table gk_private.activation_tasks is 'Per task: its latest and latest successful activation, and how many succeeded and failed (counters that survive pruning).';

create table gk_private.api_tokens (
  id uuid default gen_random_uuid() not null,
  name text not null,
  role text not null,
  token_sha256 bytea not null,
  created_at timestamp with time zone default now() not null,
  last_used_at timestamp with time zone,
  revoked_at timestamp with time zone,
  constraint api_tokens_pkey PRIMARY KEY (id),
  constraint api_tokens_token_sha256_key UNIQUE (token_sha256),
  constraint api_tokens_name_check CHECK (length(name) >= 1 AND length(name) <= 200),
  constraint api_tokens_role_check CHECK (role = ANY (ARRAY['gk_admin'::text, 'gk_viewer'::text]))
);

create table gk_private.certificate_private_keys (
  certificate_id uuid not null,
  owner_team_id uuid not null,
  sealed_key text not null,
  created_at timestamp with time zone default now() not null,
  constraint certificate_private_keys_pkey PRIMARY KEY (certificate_id),
  constraint certificate_private_keys_certificate_id_fkey FOREIGN KEY (certificate_id) REFERENCES gk_public.certificates(id) ON DELETE CASCADE,
  constraint certificate_private_keys_sealed_key_check CHECK (sealed_key ~~ 'v1:%'::text)
);
CREATE INDEX certificate_private_keys_owner_team_id_idx ON gk_private.certificate_private_keys USING btree (owner_team_id);
comment on table gk_private.certificate_private_keys is 'CA-generated private keys, sealed, downloadable once by an admin.';
grant delete on gk_private.certificate_private_keys to gk_api;
grant select (certificate_id, sealed_key) on gk_private.certificate_private_keys to gk_api;
grant update (sealed_key) on gk_private.certificate_private_keys to gk_api;

create table gk_private.controller_keys (
  certificate_id uuid not null,
  sealed_key text not null,
  created_at timestamp with time zone default now() not null,
  constraint controller_keys_pkey PRIMARY KEY (certificate_id),
  constraint controller_keys_certificate_id_fkey FOREIGN KEY (certificate_id) REFERENCES gk_public.certificates(id) ON DELETE CASCADE,
  constraint controller_keys_sealed_key_check CHECK (sealed_key ~~ 'v1:%'::text)
);
comment on table gk_private.controller_keys is 'Private keys of the controller''s certificates, sealed under the master key.';

create table gk_private.director_keys (
  team_id uuid not null,
  key_id text not null,
  role text not null,
  sealed_private_key text not null,
  created_at timestamp with time zone default now() not null,
  constraint director_keys_pkey PRIMARY KEY (team_id, key_id),
  constraint director_keys_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.director_repositories(team_id) ON DELETE CASCADE,
  constraint director_keys_key_id_check CHECK (key_id ~ '^[0-9a-f]{64}$'::text),
  constraint director_keys_role_check CHECK (role = ANY (ARRAY['root'::text, 'online'::text])),
  constraint director_keys_sealed_private_key_check CHECK (sealed_private_key ~~ 'v1:%'::text)
);
grant insert (key_id, role, sealed_private_key, team_id) on gk_private.director_keys to gk_peer;

create table gk_private.ecu_telemetry_default partition of gk_public.ecu_telemetry default;
CREATE INDEX ecu_telemetry_default_robot_id_recorded_at_idx ON gk_private.ecu_telemetry_default USING btree (robot_id, recorded_at);
CREATE INDEX ecu_telemetry_default_team_id_idx ON gk_private.ecu_telemetry_default USING btree (team_id);

create table gk_private.export_pending (
  id bigint generated always as identity not null,
  resource_type gk_public.export_resource_type not null,
  resource_id uuid not null,
  queued_at timestamp with time zone default now() not null,
  constraint export_pending_pkey PRIMARY KEY (id)
);
CREATE INDEX export_pending_resource_idx ON gk_private.export_pending USING btree (resource_type, resource_id);
comment on table gk_private.export_pending is 'Resources whose export may need a record or a deletion mark; consumed oldest first by the export coordinator.';

create table gk_private.export_sweeps (
  singleton boolean default true not null,
  last_full_at timestamp with time zone,
  last_verify_at timestamp with time zone,
  constraint export_sweeps_pkey PRIMARY KEY (singleton),
  constraint export_sweeps_singleton_check CHECK (singleton)
);

create table gk_private.local_ca_authorities (
  name text not null,
  certificate_pem text not null,
  private_key_sealed text not null,
  revocation_seq bigint default 0 not null,
  crl_number bigint default 0 not null,
  crl_revision bigint default '-1'::integer not null,
  crl_pem text,
  crl_this_update timestamp with time zone,
  crl_next_update timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  constraint local_ca_authorities_pkey PRIMARY KEY (name),
  constraint local_ca_authorities_check CHECK ((crl_pem IS NULL) = (crl_this_update IS NULL) AND (crl_pem IS NULL) = (crl_next_update IS NULL)),
  constraint local_ca_authorities_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text)
);
comment on table gk_private.local_ca_authorities is 'Local CA: key pair (private key sealed), certificate and the cached CRL.';
grant insert (certificate_pem, name, private_key_sealed) on gk_private.local_ca_authorities to gk_api;
grant select (certificate_pem, crl_next_update, crl_number, crl_pem, crl_revision, crl_this_update, name, private_key_sealed, revocation_seq) on gk_private.local_ca_authorities to gk_api;
grant update (crl_next_update, crl_number, crl_pem, crl_revision, crl_this_update) on gk_private.local_ca_authorities to gk_api;
grant insert (certificate_pem, name, private_key_sealed) on gk_private.local_ca_authorities to gk_peer;
grant select (certificate_pem, crl_next_update, crl_number, crl_pem, crl_revision, crl_this_update, name, private_key_sealed, revocation_seq) on gk_private.local_ca_authorities to gk_peer;
grant update (crl_next_update, crl_number, crl_pem, crl_revision, crl_this_update) on gk_private.local_ca_authorities to gk_peer;

create table gk_private.local_ca_certificates (
  id uuid default gen_random_uuid() not null,
  authority text not null,
  common_name text not null,
  profile text not null,
  public_key_pem text not null,
  not_after timestamp with time zone not null,
  status text default 'pending'::text not null,
  serial text,
  pem text,
  requested_at timestamp with time zone default now() not null,
  issue_after timestamp with time zone,
  issued_at timestamp with time zone,
  revoked_at timestamp with time zone,
  reason text,
  failure text,
  request_key text,
  subject jsonb,
  constraint local_ca_certificates_pkey PRIMARY KEY (id),
  constraint local_ca_certificates_authority_serial_key UNIQUE (authority, serial),
  constraint local_ca_certificates_authority_fkey FOREIGN KEY (authority) REFERENCES gk_private.local_ca_authorities(name) ON DELETE RESTRICT,
  constraint local_ca_certificates_check CHECK ((status = ANY (ARRAY['pending'::text, 'failed'::text])) = (serial IS NULL)),
  constraint local_ca_certificates_check1 CHECK ((serial IS NULL) = (pem IS NULL) AND (serial IS NULL) = (issued_at IS NULL)),
  constraint local_ca_certificates_check2 CHECK ((status = 'revoked'::text) = (revoked_at IS NOT NULL) AND (revoked_at IS NULL) = (reason IS NULL)),
  constraint local_ca_certificates_check3 CHECK ((status = 'failed'::text) = (failure IS NOT NULL)),
  constraint local_ca_certificates_reason_check CHECK (reason = ANY (ARRAY['unspecified'::text, 'keyCompromise'::text, 'superseded'::text, 'cessationOfOperation'::text])),
  constraint local_ca_certificates_request_key_check CHECK (length(request_key) <= 200),
  constraint local_ca_certificates_serial_check CHECK (serial ~ '^[1-9a-f][0-9a-f]*$'::text),
  constraint local_ca_certificates_status_check CHECK (status = ANY (ARRAY['pending'::text, 'issued'::text, 'revoked'::text, 'failed'::text]))
);
CREATE INDEX local_ca_certificates_not_after_idx ON gk_private.local_ca_certificates USING btree (not_after) WHERE (status <> 'pending'::text);
CREATE INDEX local_ca_certificates_request_key_idx ON gk_private.local_ca_certificates USING btree (authority, request_key) WHERE (request_key IS NOT NULL);
CREATE INDEX local_ca_certificates_revoked_idx ON gk_private.local_ca_certificates USING btree (authority, not_after) WHERE (status = 'revoked'::text);
comment on table gk_private.local_ca_certificates is 'Certificates issued (or pending issuance, deferred mode) by the local CA.';
grant select (authority, not_after, reason, revoked_at, serial, status) on gk_private.local_ca_certificates to gk_api;
grant select (authority, not_after, reason, revoked_at, serial, status) on gk_private.local_ca_certificates to gk_peer;

create table gk_private.master_key (
  singleton boolean default true not null,
  fingerprint text not null,
  recorded_at timestamp with time zone default now() not null,
  constraint master_key_pkey PRIMARY KEY (singleton),
  constraint master_key_fingerprint_check CHECK (fingerprint ~ '^[0-9a-f]{64}$'::text),
  constraint master_key_singleton_check CHECK (singleton)
);
comment on table gk_private.master_key is 'One row: the fingerprint of the master key secrets are sealed under.';

create table gk_private.queue_workers (
  id text not null,
  hostname text not null,
  pid integer not null,
  started_at timestamp with time zone default now() not null,
  heartbeat_at timestamp with time zone default now() not null,
  expires_at timestamp with time zone not null,
  constraint queue_workers_pkey PRIMARY KEY (id),
  constraint queue_workers_check CHECK (expires_at > heartbeat_at),
  constraint queue_workers_hostname_check CHECK (length(hostname) >= 1 AND length(hostname) <= 255),
  constraint queue_workers_id_check CHECK (length(id) >= 1 AND length(id) <= 200),
  constraint queue_workers_pid_check CHECK (pid > 0)
);
CREATE INDEX queue_workers_expires_idx ON gk_private.queue_workers USING btree (expires_at);
comment on table gk_private.queue_workers is 'Live job-runner pools (graphile_worker.jobs.locked_by) and when each stops being trusted without a heartbeat.';

create table gk_private.stored_logic (
  file text not null,
  checksum text not null,
  applied_at timestamp with time zone default now() not null,
  constraint stored_logic_pkey PRIMARY KEY (file)
);

create table gk_private.tuf_online_keys (
  team_id uuid not null,
  key_id text not null,
  sealed_private_key text not null,
  previous_key_id text,
  previous_sealed_private_key text,
  constraint tuf_online_keys_pkey PRIMARY KEY (team_id),
  constraint tuf_online_keys_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.tuf_repositories(team_id) ON DELETE CASCADE,
  constraint tuf_online_keys_previous_check CHECK ((previous_key_id IS NULL) = (previous_sealed_private_key IS NULL)),
  constraint tuf_online_keys_previous_sealed_private_key_check CHECK (previous_sealed_private_key ~~ 'v1:%'::text),
  constraint tuf_online_keys_sealed_private_key_check CHECK (sealed_private_key ~~ 'v1:%'::text)
);

create table gk_private.tuf_upload_cursors (
  team_id uuid not null,
  timestamp_version integer default 0 not null,
  uploaded_at timestamp with time zone,
  constraint tuf_upload_cursors_pkey PRIMARY KEY (team_id),
  constraint tuf_upload_cursors_team_id_fkey FOREIGN KEY (team_id) REFERENCES gk_public.tuf_repositories(team_id) ON DELETE CASCADE
);

create view gk_private.bin__blob_prefix as
 SELECT ref,
    team_id,
    enqueued_at,
    attempts,
    last_error,
    next_attempt_at
   FROM gk_public.purge_items p
  WHERE kind = 'blob_prefix'::text AND completed_at IS NULL;

create view gk_private.bin__certificate as
 SELECT id::text AS ref,
    owner_team_id AS team_id,
    COALESCE(revoke_requested_at, issue_attempted_at) AS enqueued_at,
    attempts,
    last_error,
    next_attempt_at
   FROM gk_public.certificates c
  WHERE status = 'revoking'::text OR status = 'issuing'::text AND unresolved;

create view gk_private.bin__export as
 SELECT e.id::text AS ref,
    i.team_id,
    e.state_changed_at AS enqueued_at,
    e.attempts,
    COALESCE(s.undo_error,
        CASE
            WHEN s.state = 'failed'::text THEN s.error
            ELSE NULL::text
        END) AS last_error,
        CASE
            WHEN e.saga_queued_until IS NOT NULL AND (s.id IS NULL OR s.finished_at IS NOT NULL) THEN e.saga_queued_until
            WHEN e.operating_saga_id IS NOT NULL OR e.saga_queued_until IS NOT NULL THEN COALESCE(s.updated_at, e.state_changed_at) + gk_private.bin_lease()
            ELSE e.state_changed_at
        END AS next_attempt_at
   FROM gk_public.exports e
     LEFT JOIN gk_public.images i ON e.resource_type = 'image'::gk_public.export_resource_type AND i.id = e.resource_id
     LEFT JOIN gk_public.sagas s ON s.id = e.saga_id
  WHERE e.state <> 'deleted'::text AND (e.state <> 'live'::text OR e.delete_requested_at IS NOT NULL);

create view gk_private.bin__volume as
 SELECT handle::text AS ref,
    team_id,
    state_changed_at AS enqueued_at,
    attempts,
    last_error,
    next_attempt_at
   FROM gk_public.volumes v
  WHERE state = 'destroying'::text;

CREATE OR REPLACE FUNCTION gk_private.activation_error(activation_id bigint, item text, error text)
 RETURNS void
 LANGUAGE sql
AS $function$
  insert into gk_public.activation_errors (activation_id, item, error) values ($1, left($2, 1000), left($3, 4000));
$function$;

CREATE OR REPLACE FUNCTION gk_private.activation_finish(activation_id bigint, counts jsonb, error text DEFAULT NULL::text, details jsonb DEFAULT NULL::jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
begin
  update gk_public.activations a
     set finished_at = clock_timestamp(),
         counts = coalesce(activation_finish.counts, '{}'::jsonb),
         details = coalesce(activation_finish.details, activation_finish.counts, '{}'::jsonb),
         status = case when activation_finish.error is null then 'succeeded' else 'failed' end,
         error = left(activation_finish.error, 4000)
   where a.id = activation_finish.activation_id and a.status = 'running';
  if not found then
    return false;
  end if;
  perform gk_private.activation_tasks_record(array[activation_id]);
  return true;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.activation_start(task text, worker_id text DEFAULT NULL::text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
declare
  v_id bigint;
begin
  insert into gk_public.activations (task, worker_id) values (activation_start.task, activation_start.worker_id)
  returning id into v_id;
  insert into gk_private.activation_tasks as t (task, last_activation_id) values (activation_start.task, v_id)
  on conflict on constraint activation_tasks_pkey do update set last_activation_id = excluded.last_activation_id;
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.activation_tasks_record(ids bigint[])
 RETURNS void
 LANGUAGE sql
AS $function$
  insert into gk_private.activation_tasks as t (task, succeeded, failed, last_success_id)
  select a.task,
         count(*) filter (where a.status = 'succeeded'),
         count(*) filter (where a.status = 'failed'),
         max(a.id) filter (where a.status = 'succeeded')
    from gk_public.activations a
   where a.id = any(ids)
   group by a.task
  on conflict (task) do update
    set succeeded = t.succeeded + excluded.succeeded,
        failed = t.failed + excluded.failed,
        last_success_id = coalesce(greatest(t.last_success_id, excluded.last_success_id), t.last_success_id);
$function$;

CREATE OR REPLACE FUNCTION gk_private.activations_close_orphaned(worker_ids text[], reason text)
 RETURNS bigint[]
 LANGUAGE plpgsql
AS $function$
declare
  v_ids bigint[];
begin
  with closed as (
    update gk_public.activations a
       set status = 'failed', finished_at = clock_timestamp(), error = left(reason, 4000)
     where a.status = 'running' and a.worker_id = any(worker_ids)
    returning a.id)
  select coalesce(array_agg(id order by id), '{}') into v_ids from closed;
  perform gk_private.activation_tasks_record(v_ids);
  return v_ids;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.activations_latest()
 RETURNS TABLE(task text, id bigint, status text, started_at timestamp with time zone, finished_at timestamp with time zone, counts jsonb, details jsonb, error text, item_errors integer, last_success_at timestamp with time zone, succeeded bigint, failed bigint)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- LATERAL … LIMIT 1 keeps each lookup a probe of the primary key (a plain join may be planned
  -- as a merge or hash join over the whole history).
  select t.task, a.id, a.status, a.started_at, a.finished_at, a.counts, a.details, a.error,
         (select count(*)::int from gk_public.activation_errors e where e.activation_id = a.id),
         s.finished_at, t.succeeded, t.failed
    from gk_private.activation_tasks t
    left join lateral (select * from gk_public.activations x where x.id = t.last_activation_id limit 1) a on true
    left join lateral (select y.finished_at from gk_public.activations y where y.id = t.last_success_id limit 1) s on true
   order by t.task;
$function$;
grant execute on function gk_private.activations_latest() to gk_api;

CREATE OR REPLACE FUNCTION gk_private.api_token_create(name text, role text, token_sha256 bytea)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
declare
  new_id uuid;
begin
  if role not in ('gk_admin', 'gk_viewer') then
    raise exception 'unknown role %, expected admin or viewer', role using errcode = '22023';
  end if;
  insert into gk_private.api_tokens (name, role, token_sha256)
  values (api_token_create.name, api_token_create.role, api_token_create.token_sha256)
  returning id into new_id;
  return new_id;
end;
$function$;
comment on function gk_private.api_token_create(text,text,bytea) is 'Registers a token by its sha256; role is gk_admin or gk_viewer.';

CREATE OR REPLACE FUNCTION gk_private.api_token_lookup(token_sha256 bytea)
 RETURNS TABLE(id uuid, name text, role text)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with hit as (
    select t.id, t.name, t.role, t.last_used_at
      from gk_private.api_tokens t
     where t.token_sha256 = api_token_lookup.token_sha256 and t.revoked_at is null
  ), touched as (
    update gk_private.api_tokens t
       set last_used_at = now()
      from hit
     where t.id = hit.id and (hit.last_used_at is null or hit.last_used_at < now() - interval '1 minute')
  )
  select hit.id, hit.name, hit.role from hit;
$function$;
grant execute on function gk_private.api_token_lookup(bytea) to gk_api;

CREATE OR REPLACE FUNCTION gk_private.api_token_revoke(id_or_name text)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with revoked as (
    update gk_private.api_tokens t
       set revoked_at = now()
     where t.revoked_at is null
       and (t.name = id_or_name or t.id::text = id_or_name)
    returning 1
  )
  select count(*) from revoked;
$function$;

CREATE OR REPLACE FUNCTION gk_private.api_token_role(token_sha256 bytea)
 RETURNS text
 LANGUAGE sql
AS $function$
  select l.role from gk_private.api_token_lookup(api_token_role.token_sha256) l;
$function$;

CREATE OR REPLACE FUNCTION gk_private.audit_record(token_id uuid, token_name text, role text, operation text, operation_name text, fields text[], arguments jsonb, outcome text, error text, duration_ms integer)
 RETURNS bigint
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into gk_public.audit_events (token_id, token_name, role, operation, operation_name, fields, arguments, outcome, error, duration_ms)
  values (audit_record.token_id, audit_record.token_name, audit_record.role, audit_record.operation, audit_record.operation_name,
          audit_record.fields, audit_record.arguments, audit_record.outcome, left(audit_record.error, 2000), audit_record.duration_ms)
  returning id;
$function$;
comment on function gk_private.audit_record(uuid,text,text,text,text,text[],jsonb,text,text,integer) is 'Records one admin API mutation in gk_public.audit_events (called by the server, src/server/audit.ts).';
grant execute on function gk_private.audit_record(uuid,text,text,text,text,text[],jsonb,text,text,integer) to gk_api;

CREATE OR REPLACE FUNCTION gk_private.bin_backoff(attempts integer)
 RETURNS interval
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select make_interval(secs => exp(least(10, greatest(attempts, 1))));
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_kind_register(kind text, area text, description text, purge_task text DEFAULT NULL::text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_missing text[];
begin
  select array_agg(m) into v_missing from unnest(array[
    case when to_regclass(format('gk_private.%I', 'bin__' || kind)) is null then format('view gk_private.bin__%s', kind) end,
    case when to_regprocedure(format('gk_private.%I(integer)', 'bin_redispatch__' || kind)) is null
         then format('function gk_private.bin_redispatch__%s(integer)', kind) end,
    case when to_regprocedure(format('gk_private.%I(text)', 'bin_retry__' || kind)) is null
         then format('function gk_private.bin_retry__%s(text)', kind) end]) m
   where m is not null;
  if v_missing is not null then
    raise exception 'bin kind % is missing %', kind, array_to_string(v_missing, ', ') using errcode = '42883';
  end if;
  insert into gk_public.bin_kinds as k (kind, area, description, purge_task)
  values (bin_kind_register.kind, bin_kind_register.area, bin_kind_register.description, bin_kind_register.purge_task)
  on conflict on constraint bin_kinds_pkey do update
    set area = excluded.area, description = excluded.description, purge_task = excluded.purge_task
  where (k.area, k.description, k.purge_task) is distinct from (excluded.area, excluded.description, excluded.purge_task);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_lease()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$
  select coalesce(nullif(current_setting('groundskeeper.bin_lease', true), '')::interval, interval '2 minutes');
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_redispatch(max_items integer DEFAULT 10000)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  k record;
  v_res jsonb;
  v_kinds jsonb := '{}';
  v_errors jsonb := '[]';
begin
  for k in select b.kind from gk_public.bin_kinds b order by b.kind loop
    begin
      execute format('select gk_private.%I($1)', 'bin_redispatch__' || k.kind) into v_res using max_items;
      v_kinds := v_kinds || jsonb_build_object(k.kind, coalesce(v_res, '{}'));
    exception when others then
      v_errors := v_errors || jsonb_build_object('kind', k.kind, 'error', sqlerrm);
    end;
  end loop;
  return jsonb_build_object('kinds', v_kinds, 'errors', v_errors);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_redispatch__blob_prefix(max_items integer)
 RETURNS jsonb
 LANGUAGE sql
AS $function$ select gk_private.purge_items_redispatch('blob_prefix', max_items) $function$;

CREATE OR REPLACE FUNCTION gk_private.bin_redispatch__certificate(max_items integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_revoke uuid[];
  v_issue uuid[];
  v_revoke_busy boolean := gk_private.task_backlog('certificates__revoke');
  v_issue_busy boolean := gk_private.task_backlog('certificates__issue');
begin
  with due as (
    select c.id, c.status from gk_public.certificates c
     where ((c.status = 'revoking' and not v_revoke_busy) or (c.status = 'issuing' and not v_issue_busy))
       and c.next_attempt_at <= now()
       and (c.claim_expires_at is null or c.claim_expires_at <= now())
     order by c.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.certificates c set next_attempt_at = now() + gk_private.bin_lease()
      from due where c.id = due.id
    returning c.id, c.status)
  select array_agg(id) filter (where status = 'revoking'), array_agg(id) filter (where status = 'issuing')
    into v_revoke, v_issue from bumped;
  perform gk_private.enqueue_id_batches('certificates__revoke', coalesce(v_revoke, '{}'));
  perform gk_private.enqueue_id_batches('certificates__issue', coalesce(v_issue, '{}'), 50);
  return jsonb_build_object(
    'redispatched', coalesce(cardinality(v_revoke), 0) + coalesce(cardinality(v_issue), 0),
    'busy', v_revoke_busy or v_issue_busy,
    'revocations', coalesce(cardinality(v_revoke), 0),
    'issuances', coalesce(cardinality(v_issue), 0));
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_redispatch__export(max_items integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_busy boolean := gk_private.task_backlog('exports__coordinate');
  v_waiting int;
  v_sagas int;
begin
  -- Waiting for the coordinator: no saga runs for them.
  select count(*)::int into v_waiting from (
    select 1 from gk_public.exports e
     where e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null)
       and e.operating_saga_id is null
       and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
     limit max_items) w;
  if v_waiting > 0 and not v_busy then
    perform gk_private.reconciler_activate('exports__coordinate');
  end if;
  -- Held by a saga that has stopped moving (its job gave up or was lost): drive it again (a
  -- second runner of a live one finds its advisory lock taken and retries later). A record
  -- settling wrote already taken keeps its lease until live: the coordinator's overdue check
  -- (exports_queued_overdue) looks after it, and does not pile jobs onto a queue that is only behind.
  with stuck as (
    select s.id, s.name from gk_public.exports e join gk_public.sagas s on s.id = e.operating_saga_id
     where e.state in ('assigning', 'deleting') and e.saga_queued_until is null
       and s.finished_at is null and s.updated_at < now() - gk_private.bin_lease()
     order by s.updated_at limit max_items)
  select count(gk_private.saga_enqueue(stuck.id, stuck.name))::int into v_sagas from stuck;
  return jsonb_build_object('redispatched', case when v_busy then 0 else v_waiting end + v_sagas, 'busy', v_busy);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_redispatch__volume(max_items integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_busy boolean := gk_private.task_backlog('volumes__collect');
  v_due int;
begin
  select count(*)::int into v_due from (
    select 1 from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
     where v.state = 'destroying' and v.next_attempt_at <= now()
       and w.state = any (gk_private.workers_serving_states())
     limit max_items) d;
  if v_due > 0 and not v_busy then
    perform gk_private.volumes_activate_collector();
  end if;
  return jsonb_build_object('redispatched', case when v_busy then 0 else v_due end, 'busy', v_busy);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_retry__blob_prefix(ref text)
 RETURNS boolean
 LANGUAGE sql
AS $function$ select gk_private.purge_items_retry('blob_prefix', ref) $function$;

CREATE OR REPLACE FUNCTION gk_private.bin_retry__certificate(ref text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  v_id uuid;
begin
  begin
    v_id := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not a certificate id', ref using errcode = '22023';
  end;
  -- An unresolved one is asked about again (e.g. once its CA can answer lookups); an unresolved
  -- issuance is retried (the certificates triggers enqueue it), which asks the CA first.
  update gk_public.certificates c set retry_requested_at = clock_timestamp(), unresolved = false, next_attempt_at = now()
   where c.id = v_id and (c.status = 'revoking' or (c.status = 'issuing' and c.unresolved));
  return found;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_retry__export(ref text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  v_id uuid;
  v gk_public.exports;
begin
  begin
    v_id := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not an export id', ref using errcode = '22023';
  end;
  select * into v from gk_public.exports e
   where e.id = v_id and e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null);
  if not found then
    return false;
  end if;
  if v.operating_saga_id is not null then
    update gk_public.sagas s set retry_requested_at = clock_timestamp() where s.id = v.operating_saga_id and s.finished_at is null;
  else
    perform gk_private.reconciler_activate('exports__coordinate');
  end if;
  return true;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.bin_retry__volume(ref text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  v_handle uuid;
begin
  begin
    v_handle := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not a volume handle', ref using errcode = '22023';
  end;
  update gk_public.volumes v set retry_requested_at = clock_timestamp()
   where v.handle = v_handle and v.state = 'destroying';
  return found;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_claim_issue(id uuid, claim uuid, ca_timeout interval, keeps_keys boolean)
 RETURNS TABLE(outcome text, owner_id text, profile text, public_key_pem text, csr_pem text, not_after timestamp with time zone, attempts integer, attempted_before boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_claim_until(ca_timeout interval)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
  select now() + gk_private.bin_lease() + coalesce(ca_timeout, interval '0');
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_fetched(id uuid, pem text, serial text, not_after timestamp with time zone, not_before timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_is_dirty(id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce(bool_or(c.subject_generation < r.certificate_generation), false)
    from gk_public.certificates c join gk_public.robots r on r.id = c.robot_id
   where c.id = certificate_is_dirty.id;
$function$;
grant execute on function gk_private.certificate_is_dirty(uuid) to gk_api;

CREATE OR REPLACE FUNCTION gk_private.certificate_issue_failed(id uuid, claim uuid, error text, permanent boolean, release boolean, forget_attempt boolean DEFAULT false)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_issue_unresolved(id uuid, claim uuid, error text)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_issued(id uuid, claim uuid, ca_ref text, serial text, pem text, not_before timestamp with time zone, not_after timestamp with time zone, sealed_key text)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_orphans(id uuid, ca_refs text[], serials text[], pems text[] DEFAULT NULL::text[])
 RETURNS integer
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificate_peer(serial text)
 RETURNS TABLE(certificate_id uuid, profile text, status text, worker_id uuid, controller_id uuid, live boolean)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.id, c.profile, c.status, c.worker_id, c.controller_id, c.status = 'issued' and c.not_after > now()
    from gk_public.certificates c
   where c.serial = certificate_peer.serial and c.profile in ('worker', 'controller');
$function$;
grant execute on function gk_private.certificate_peer(text) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.certificates_claim_revoke(ids uuid[], claim uuid, ca_timeout interval)
 RETURNS TABLE(id uuid, ca_ref text, serial text, revocation_reason text, attempted boolean)
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificates_learnt(ids uuid[], ca_refs text[], serials text[], claim uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.certificates c
     set ca_ref = coalesce(c.ca_ref, s.ca_ref), serial = coalesce(c.serial, s.serial)
    from unnest(ids, ca_refs, serials) as s(id, ca_ref, serial)
   where c.id = s.id and c.claim_id = certificates_learnt.claim;
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificates_revoke_failed(ids uuid[], error text, claim uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.certificates c
     set attempts = c.attempts + 1,
         last_error = left(error, 2000),
         next_attempt_at = now() + gk_private.bin_backoff(c.attempts + 1) + gk_private.bin_lease(),
         claim_id = null, claim_expires_at = null
   where c.id = any(ids) and c.status = 'revoking' and c.claim_id = certificates_revoke_failed.claim;
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificates_revoked(ids uuid[], never_issued_ids uuid[], claim uuid)
 RETURNS integer
 LANGUAGE sql
AS $function$
  with done as (
    update gk_public.certificates c
       set status = 'revoked', revoked_at = now(), last_error = null, claim_id = null, claim_expires_at = null,
           never_issued = c.id = any(certificates_revoked.never_issued_ids)
     where c.id = any(certificates_revoked.ids || certificates_revoked.never_issued_ids) and c.status = 'revoking'
       and c.claim_id = certificates_revoked.claim
    returning 1)
  select count(*)::int from done;
$function$;

CREATE OR REPLACE FUNCTION gk_private.certificates_unresolved(ids uuid[], error text, claim uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.certificates c
     set unresolved = true, last_error = left(error, 2000), next_attempt_at = null, claim_id = null, claim_expires_at = null
   where c.id = any(ids) and c.status = 'revoking' and c.claim_id = certificates_unresolved.claim;
$function$;

CREATE OR REPLACE FUNCTION gk_private.containers_collect()
 RETURNS integer
 LANGUAGE sql
AS $function$
  with gone as (
    delete from gk_public.containers c
     where c.build_id is null and c.created_at < now() - gk_private.volumes_setting('containers_grace', interval '1 minute')
    returning 1)
  select count(*)::int from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.director_due(max_rows integer)
 RETURNS TABLE(robot_id uuid, team_id uuid)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  widest interval := (select max(p.resign_window) from gk_public.director_repositories p);
begin
  if widest is not null then
    perform gk_private.director_mark_dirty(array(
      select d.robot_id
        from gk_public.robot_directors d
        join gk_public.director_repositories p on p.team_id = d.team_id
       where not d.dirty and d.expires < now() + widest and d.expires < now() + p.resign_window
       order by d.expires
       limit max_rows));
  end if;
  return query
  select x.robot_id, (array_agg(x.team_id))[1]
    from ((select d.robot_id, d.team_id, d.dirty_since as since
             from gk_public.robot_directors d
            where d.dirty
            order by d.dirty_since, d.robot_id
            limit max_rows)
          union all
          (select rr.robot_id, rr.team_id, r.launched_at
             from gk_public.rollouts r
             join gk_public.rollout_robots rr on rr.rollout_id = r.id and rr.state = 'pending'
            where r.state = 'launched'
            order by r.launched_at
            limit max_rows)) x
   group by x.robot_id
   order by min(x.since), x.robot_id
   limit max_rows;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.director_mark_dirty(robot_ids uuid[])
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  n bigint;
begin
  if robot_ids is null or cardinality(robot_ids) = 0 then
    return 0;
  end if;
  -- One statement: existing rows updated (in robot_id order), missing ones inserted. Only the
  -- missing ones are looked up in robots (for their team): a launch's 50,000 robots mostly have
  -- a row already. A join on unnest, not "= any(robot_ids)": a 50,000-element array must not be
  -- scanned per row.
  with marked as (
    update gk_public.robot_directors d
       set dirty = true, dirty_since = coalesce(d.dirty_since, now()), generation = d.generation + 1
      from (select u.id from unnest(robot_ids) u (id) order by u.id) i
     where d.robot_id = i.id
    returning 1
  ), added as (
    insert into gk_public.robot_directors (robot_id, team_id)
    select r.id, r.team_id
      from unnest(robot_ids) u (id)
      join gk_public.robots r on r.id = u.id
     where not exists (select 1 from gk_public.robot_directors d where d.robot_id = u.id)
     order by r.id
    on conflict (robot_id) do nothing
    returning 1
  )
  select (select count(*) from marked) + (select count(*) from added) into n;
  -- The sweep comes by soon for robots that do not read their metadata first.
  perform gk_private.enqueue('rollouts__regenerate', '{}'::jsonb, job_key := 'rollouts__regenerate',
                             run_at := now() + interval '1 second', queue_name := 'rollouts__regenerate',
                             job_key_mode := 'preserve_run_at');
  return n;
end;
$function$;
comment on function gk_private.director_mark_dirty(uuid[]) is 'Marks these robots'' director metadata dirty (generation + 1) in one statement; returns rows marked.';

CREATE OR REPLACE FUNCTION gk_private.director_mark_team_dirty(p_team_id uuid)
 RETURNS bigint
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  select gk_private.director_mark_dirty(array(select r.id from gk_public.robots r where r.team_id = p_team_id))
$function$;

CREATE OR REPLACE FUNCTION gk_private.director_prepare(robot_ids uuid[], lock_rows boolean)
 RETURNS TABLE(robot_id uuid, team_id uuid, dirty boolean, fresh boolean, generation text, pending_rollout_id uuid, targets_version integer, snapshot_version integer, timestamp_version integer, now_ms double precision, targets text, snapshot text, "timestamp" text, root_version integer, online_key_id text, targets_s double precision, snapshot_s double precision, timestamp_s double precision, ecus jsonb)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
declare
  have bigint := 0;
begin
  if lock_rows then
    perform 1 from unnest(robot_ids) u (id)
      join gk_public.rollout_robots rr on rr.robot_id = u.id and rr.state = 'pending'
     order by rr.robot_id for update of rr;
    perform 1 from unnest(robot_ids) u (id) join gk_public.robot_directors d on d.robot_id = u.id
     order by d.robot_id for update of d;
    get diagnostics have = row_count;
  end if;
  -- A read locks its robot's row first and creates it only when it is missing (a robot read
  -- before its first signing): one statement fewer on a dirty read.
  if have < cardinality(robot_ids) then
    insert into gk_public.robot_directors (robot_id, team_id)
    select r.id, r.team_id from unnest(robot_ids) u (id) join gk_public.robots r on r.id = u.id
     where not exists (select 1 from gk_public.robot_directors d where d.robot_id = u.id)
    on conflict on constraint robot_directors_pkey do nothing;
    if lock_rows then
      perform 1 from unnest(robot_ids) u (id) join gk_public.robot_directors d on d.robot_id = u.id
       order by d.robot_id for update of d;
    end if;
  end if;
  return query
  with t as (
    select x.robot_id, jsonb_agg(to_jsonb(x) order by x.ecu_serial) as ecus from gk_private.director_targets(robot_ids) x group by x.robot_id
  )
  select d.robot_id, d.team_id, d.dirty or pr.rollout_id is not null, coalesce(d.expires > now(), false), d.generation::text,
         pr.rollout_id, d.targets_version, d.snapshot_version, d.timestamp_version, extract(epoch from now())::float8 * 1000,
         x.targets, x.snapshot, x.timestamp,
         p.root_version, p.online_key_id, extract(epoch from p.targets_lifetime)::float8,
         extract(epoch from p.snapshot_lifetime)::float8, extract(epoch from p.timestamp_lifetime)::float8,
         coalesce(t.ecus, '[]'::jsonb)
    from unnest(robot_ids) u (id)
    join gk_public.robot_directors d on d.robot_id = u.id
    left join gk_public.rollout_robots pr on pr.robot_id = d.robot_id and pr.state = 'pending'
    left join gk_public.robot_director_documents x on x.robot_id = d.robot_id
    left join gk_public.director_repositories p on p.team_id = d.team_id
    left join t on t.robot_id = d.robot_id
   order by d.robot_id;
end;
$function$;
grant execute on function gk_private.director_prepare(uuid[],boolean) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.director_read(p_robot_id uuid, p_team_id uuid)
 RETURNS TABLE(clean boolean, robot_id uuid, team_id uuid, dirty boolean, fresh boolean, generation text, pending_rollout_id uuid, targets_version integer, snapshot_version integer, timestamp_version integer, now_ms double precision, targets text, snapshot text, "timestamp" text, root_version integer, online_key_id text, targets_s double precision, snapshot_s double precision, timestamp_s double precision, ecus jsonb)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
begin
  -- The row by its key first (materialized): otherwise, with statistics from before the robots
  -- were signed, the planner takes "expires > now()" for rare and scans robot_directors_expires_idx
  -- (every clean robot) instead of one key lookup.
  return query
  with d as materialized (select * from gk_public.robot_directors d where d.robot_id = p_robot_id)
  select true, d.robot_id, d.team_id, false, true, d.generation::text, null::uuid, d.targets_version, d.snapshot_version,
         d.timestamp_version, null::float8, x.targets, x.snapshot, x.timestamp, d.root_version, null::text, null::float8,
         null::float8, null::float8, null::jsonb
    from d join gk_public.robot_director_documents x on x.robot_id = d.robot_id
   where d.team_id = p_team_id and not d.dirty and d.expires > now()
     and not exists (select 1 from gk_public.rollout_robots rr where rr.robot_id = d.robot_id and rr.state = 'pending');
  if found then
    return;
  end if;
  return query
  select false, p.* from gk_private.director_prepare(array[p_robot_id], true) p where p.team_id = p_team_id;
end;
$function$;
grant execute on function gk_private.director_read(uuid,uuid) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.director_robot_online_key(serial text, certificate bytea, key_id text)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select k.sealed_private_key
    from gk_private.robot_presenting(director_robot_online_key.serial, director_robot_online_key.certificate) p
    join gk_private.director_keys k on k.team_id = p.team_id
   where k.key_id = director_robot_online_key.key_id and k.role = 'online';
$function$;
grant execute on function gk_private.director_robot_online_key(text,bytea,text) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.director_roots_due()
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  select p.team_id from gk_public.director_repositories p where p.root_expires < now() + p.resign_window order by p.team_id
$function$;

CREATE OR REPLACE FUNCTION gk_private.director_store(robot_ids uuid[], generations bigint[], pending_rollout_ids uuid[], read_timestamp_versions integer[], root_versions integer[], expires timestamp with time zone[], targets text[], snapshots text[], timestamps text[])
 RETURNS SETOF uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  return query
  with s as (
    select * from unnest(robot_ids, generations, pending_rollout_ids, read_timestamp_versions, root_versions, expires, targets,
                         snapshots, timestamps)
      as s (robot_id, generation, pending_rollout_id, read_timestamp_version, root_version, expires, targets, snapshot, timestamp)
  ), pending as (
    select rr.rollout_id, rr.robot_id, rr.team_id
      from s join gk_public.rollout_robots rr on rr.rollout_id = s.pending_rollout_id and rr.robot_id = s.robot_id
     where rr.state = 'pending'
     order by rr.robot_id
       for update of rr
  ), locked as (
    select d.robot_id from gk_public.robot_directors d join s on s.robot_id = d.robot_id
     where (select count(*) from pending) >= 0
     order by d.robot_id for update of d
  ), stored as (
    update gk_public.robot_directors d
       set dirty = false, dirty_since = null, signed_generation = s.generation, root_version = s.root_version,
           targets_version = d.targets_version + 1, snapshot_version = d.snapshot_version + 1,
           timestamp_version = d.timestamp_version + 1, expires = s.expires, signed_at = now()
      from s
     where d.robot_id = s.robot_id and d.generation = s.generation and d.timestamp_version = s.read_timestamp_version
       and (s.pending_rollout_id is null or exists (select 1 from pending p where p.robot_id = s.robot_id))
       and (select count(*) from locked) >= 0
    returning d.robot_id, s.pending_rollout_id
  ), scheduled as (
    -- Each stored robot's pending row by its key (a join of two CTEs would be planned as a nested
    -- loop over both: their row estimates are 1).
    update gk_public.rollout_robots rr
       set state = case when l.lists then 'scheduled' else 'skipped' end,
           result = case when l.lists then null else 'nothing to install: no ECU of a mapped hardware id needs a new image' end,
           updated_at = now()
      from (select st.robot_id, st.pending_rollout_id as rollout_id,
                   exists (select 1 from gk_public.ecus e
                             join gk_public.rollout_images ri on ri.rollout_id = p.rollout_id and ri.team_id = p.team_id
                                                             and ri.hardware_id = e.hardware_id
                            where e.robot_id = p.robot_id and e.team_id = p.team_id
                              and e.installed_image_id is distinct from ri.image_id) as lists
              from stored st
              join gk_public.rollout_robots p on p.rollout_id = st.pending_rollout_id and p.robot_id = st.robot_id
             where st.pending_rollout_id is not null
            offset 0) l -- (offset 0: lists is computed once per row, not once per column using it)
     where rr.rollout_id = l.rollout_id and rr.robot_id = l.robot_id and rr.state = 'pending'
    returning rr.robot_id
  ), documents as (
    insert into gk_public.robot_director_documents as x (robot_id, targets, snapshot, timestamp)
    select s.robot_id, s.targets, s.snapshot, s.timestamp from s join stored on stored.robot_id = s.robot_id
    on conflict (robot_id) do update set targets = excluded.targets, snapshot = excluded.snapshot, timestamp = excluded.timestamp
    returning x.robot_id
  )
  select documents.robot_id from documents where (select count(*) from scheduled) >= 0;
end;
$function$;
grant execute on function gk_private.director_store(uuid[],bigint[],uuid[],integer[],integer[],timestamp with time zone[],text[],text[],text[]) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.director_targets(robot_ids uuid[])
 RETURNS TABLE(robot_id uuid, ecu_serial text, hardware_id text, rollout_id uuid, image_name text, image_version text, length bigint, sha256 text, sha512 text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
begin
  return query
  select e.robot_id, e.serial, e.hardware_id, w.rollout_id, i.name, i.version, i.length, i.sha256, i.sha512
    from unnest(robot_ids) u (id)
    join gk_public.ecus e on e.robot_id = u.id
    left join lateral (
      select ri.image_id, rr.rollout_id
        from gk_public.rollout_robots rr
        join gk_public.rollout_images ri on ri.rollout_id = rr.rollout_id and ri.team_id = rr.team_id and ri.hardware_id = e.hardware_id
       where rr.robot_id = e.robot_id and rr.state in ('pending', 'scheduled', 'accepted')
         and (rr.state <> 'pending'
              or exists (select 1 from gk_public.ecus e2
                           join gk_public.rollout_images ri2 on ri2.rollout_id = rr.rollout_id and ri2.team_id = rr.team_id
                                                            and ri2.hardware_id = e2.hardware_id
                          where e2.robot_id = rr.robot_id and e2.team_id = rr.team_id
                            and e2.installed_image_id is distinct from ri2.image_id))) w on true
    join gk_public.images i on i.id = coalesce(w.image_id, e.installed_image_id) and i.team_id = e.team_id
   order by e.robot_id, e.serial;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.enqueue(task text, payload jsonb DEFAULT '{}'::jsonb, job_key text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, queue_name text DEFAULT NULL::text, job_key_mode text DEFAULT 'replace'::text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  perform graphile_worker.add_job(
    identifier := task,
    payload := payload::json,
    queue_name := queue_name,
    run_at := run_at,
    max_attempts := max_attempts,
    job_key := job_key,
    job_key_mode := job_key_mode
  );
end;
$function$;
comment on function gk_private.enqueue(text,jsonb,text,timestamp with time zone,integer,text,text) is 'Enqueue one job (debounce with job_key). Use enqueue_many for more than a handful.';

CREATE OR REPLACE FUNCTION gk_private.enqueue_id_batches(task text, ids uuid[], batch_size integer DEFAULT 200)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  payloads jsonb[];
begin
  select array_agg(jsonb_build_object('ids', to_jsonb(chunk)))
    into payloads
    from (select array_agg(id order by id) as chunk
            from (select id, (row_number() over (order by id) - 1) / batch_size as g
                    from (select distinct unnest(ids) as id) d) numbered
           group by g) chunks;
  perform gk_private.enqueue_many(task, payloads);
  return coalesce(cardinality(payloads), 0);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.enqueue_many(task text, payloads jsonb[], max_attempts integer DEFAULT NULL::integer)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if payloads is null or cardinality(payloads) = 0 then
    return;
  end if;
  perform graphile_worker.add_jobs(
    array(
      select row(task, p::json, null, null, max_attempts, null, null, null)::graphile_worker.job_spec
      from unnest(payloads) as p
    )
  );
end;
$function$;
comment on function gk_private.enqueue_many(text,jsonb[],integer) is 'Enqueue one job per payload with a single add_jobs call.';

CREATE OR REPLACE FUNCTION gk_private.ensure_telemetry_partitions(from_day date DEFAULT ((now() AT TIME ZONE 'utc'::text))::date, days integer DEFAULT 7)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  d date;
  v_name text;
  v_created int := 0;
begin
  for d in select generate_series(from_day, from_day + (days - 1), interval '1 day')::date loop
    v_name := gk_private.telemetry_partition_name(d);
    continue when to_regclass('gk_private.' || v_name) is not null;
    -- Strays for this day in the default partition would make ATTACH fail: move them.
    create temp table if not exists gk_telemetry_strays (like gk_public.ecu_telemetry) on commit drop;
    with moved as (
      delete from gk_private.ecu_telemetry_default t
       where t.recorded_at >= d::timestamp at time zone 'utc' and t.recorded_at < (d + 1)::timestamp at time zone 'utc'
      returning t.*)
    insert into gk_telemetry_strays select * from moved;
    execute format('create table gk_private.%I partition of gk_public.ecu_telemetry for values from (%L) to (%L)',
                   v_name, d::timestamp at time zone 'utc', (d + 1)::timestamp at time zone 'utc');
    insert into gk_public.ecu_telemetry select * from gk_telemetry_strays;
    truncate gk_telemetry_strays;
    v_created := v_created + 1;
  end loop;
  return v_created;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.expire_certificates()
 RETURNS bigint
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.expire_provisioning_credentials()
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with expired as (
    update gk_public.provisioning_credentials p set status = 'expired', expired_at = now()
     where p.status in ('issuing', 'issued') and p.expires_at <= now()
    returning 1)
  select count(*) from expired;
$function$;

CREATE OR REPLACE FUNCTION gk_private.export_node(id uuid)
 RETURNS TABLE(id uuid, worker_id uuid, address text, state text, fresh boolean)
 LANGUAGE sql
 STABLE
AS $function$
  select n.id, n.worker_id, n.address, n.state, n.expires_at > now() from gk_public.export_nodes n where n.id = export_node.id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.export_node_attachments_swept(node_id uuid, after uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.export_nodes n
     set attachments_sweep_after = export_node_attachments_swept.after,
         attachments_swept_at = case when export_node_attachments_swept.after is null then now() else n.attachments_swept_at end
   where n.id = export_node_attachments_swept.node_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.export_node_heartbeat(worker_id uuid, attachments integer)
 RETURNS text
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update gk_public.export_nodes n
     set last_heartbeat_at = now(), expires_at = now() + n.heartbeat_ttl,
         attachments = coalesce(export_node_heartbeat.attachments, n.attachments)
   where n.worker_id = export_node_heartbeat.worker_id
  returning n.state;
$function$;
grant execute on function gk_private.export_node_heartbeat(uuid,integer) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.export_node_registered(worker_id uuid, address text, agent_version text, heartbeat_ttl interval DEFAULT NULL::interval)
 RETURNS TABLE(id uuid, state text)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with node as (
    insert into gk_public.export_nodes as n (worker_id, address, agent_version, heartbeat_ttl, last_heartbeat_at, expires_at)
    select w.id, export_node_registered.address, left(export_node_registered.agent_version, 100),
           coalesce(export_node_registered.heartbeat_ttl, interval '60 seconds'), now(),
           now() + coalesce(export_node_registered.heartbeat_ttl, interval '60 seconds')
      from gk_public.workers w where w.id = export_node_registered.worker_id
    on conflict (worker_id) do update
      set address = case when n.state = 'in_service' then excluded.address else n.address end,
          agent_version = excluded.agent_version,
          heartbeat_ttl = excluded.heartbeat_ttl,
          last_heartbeat_at = now(),
          expires_at = excluded.expires_at
    returning n.id, n.state, n.address),
  -- A node that came back at another address: its exports are served from there now.
  moved as (
    update gk_public.exports e set url = node.address || gk_private.exports_blob_path(e.attachment_id)
      from node
     where e.node_id = node.id and e.state in ('live', 'deleting')
       and e.url is distinct from node.address || gk_private.exports_blob_path(e.attachment_id))
  select node.id, node.state from node;
$function$;
grant execute on function gk_private.export_node_registered(uuid,text,text,interval) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.export_nodes_to_sweep(max_nodes integer)
 RETURNS TABLE(id uuid, worker_id uuid, worker_name text, address text, sweep_after uuid)
 LANGUAGE sql
 STABLE
AS $function$
  select n.id, n.worker_id, w.name, n.address, n.attachments_sweep_after
    from gk_public.export_nodes n left join gk_public.workers w on w.id = n.worker_id
   where n.state = 'in_service' and n.worker_id is not null
   order by n.attachments_swept_at nulls first, n.id
   limit max_nodes;
$function$;

CREATE OR REPLACE FUNCTION gk_private.export_robot_fetch(team_id uuid, image_id uuid)
 RETURNS TABLE(image_id uuid, sha256 text, length bigint, attachment_id uuid, url text, node_worker_id uuid, node_fresh boolean)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select i.id, i.sha256, i.length, n.attachment_id, n.url, n.worker_id, n.fresh
    from gk_public.images i
    left join lateral (
      select e.attachment_id, e.url, x.worker_id, x.expires_at > now() as fresh
        from gk_public.exports e
        join gk_public.export_nodes x on x.id = e.node_id and x.state = 'in_service'
       where e.resource_type = 'image' and e.resource_id = i.id
         and e.state = 'live' and e.delete_requested_at is null
       limit 1
    ) n on true
   where i.id = export_robot_fetch.image_id and i.team_id = export_robot_fetch.team_id;
$function$;
grant execute on function gk_private.export_robot_fetch(uuid,uuid) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.exports_blob_path(attachment_id uuid)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select '/v1/exports/' || attachment_id::text || '/blob';
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_bypass(max_items integer)
 RETURNS uuid[]
 LANGUAGE sql
AS $function$
  with gone as (
    update gk_public.exports e set state = 'deleted', deleted_at = now(), state_changed_at = now()
     where e.id in (select d.id from gk_public.exports d
                     where d.delete_requested_at is not null and d.state = 'requested'
                     order by d.state_changed_at limit max_items)
       and e.state = 'requested'
    returning e.id)
  select coalesce(array_agg(id), '{}') from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_changeset(max_items integer)
 RETURNS TABLE(action text, export_id uuid, resource_type gk_public.export_resource_type, resource_id uuid, generation bigint)
 LANGUAGE sql
 STABLE
AS $function$
  (select 'create', e.id, e.resource_type, e.resource_id, e.generation
     from gk_public.exports e
    where e.state = 'requested' and e.delete_requested_at is null and e.saga_queued_until is null
      and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
    order by e.created_at limit max_items)
  union all
  (select 'delete', e.id, e.resource_type, e.resource_id, e.generation
     from gk_public.exports e
    where e.delete_requested_at is not null and e.state = 'live' and e.saga_queued_until is null
      and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
    order by e.state_changed_at limit max_items);
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_deleted_batch(ids uuid[], saga_ids uuid[])
 RETURNS SETOF gk_public.exports
 LANGUAGE sql
AS $function$
  with x as (select * from unnest(ids, saga_ids) x(id, saga_id)),
  moved as (
    update gk_public.exports e set state = 'deleted', operating_saga_id = null, deleted_at = now(), state_changed_at = now()
      from x
     where e.id = x.id and e.operating_saga_id = x.saga_id and e.state = 'deleting'
    returning e.*)
  select * from moved
  union all
  select e.* from gk_public.exports e join x on e.id = x.id where e.state = 'deleted' and e.saga_id = x.saga_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_full_sweep(max_items integer, every interval)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  v_missing int;
  v_gone int;
begin
  perform 1 from gk_private.export_sweeps s
   where s.last_full_at is null or s.last_full_at < now() - every
     for update skip locked;
  if not found then
    return null;
  end if;
  with missing as (
    select i.id from gk_public.images i
     where not exists (select 1 from gk_public.exports e
                        where e.resource_type = 'image' and e.resource_id = i.id and e.state <> 'deleted')
       and not exists (select 1 from gk_private.export_pending p where p.resource_type = 'image' and p.resource_id = i.id)
     limit max_items),
  queued as (insert into gk_private.export_pending (resource_type, resource_id) select 'image', m.id from missing m returning 1)
  select count(*)::int into v_missing from queued;
  with gone as (
    select e.resource_id from gk_public.exports e
     where e.resource_type = 'image' and e.state <> 'deleted' and e.delete_requested_at is null
       and not exists (select 1 from gk_public.images i where i.id = e.resource_id)
       and not exists (select 1 from gk_private.export_pending p where p.resource_type = 'image' and p.resource_id = e.resource_id)
     limit max_items),
  queued as (insert into gk_private.export_pending (resource_type, resource_id) select 'image', g.resource_id from gone g returning 1)
  select count(*)::int into v_gone from queued;
  if v_missing < max_items and v_gone < max_items then
    update gk_private.export_sweeps set last_full_at = now();
  end if;
  return v_missing + v_gone;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_live_batch(ids uuid[], saga_ids uuid[])
 RETURNS SETOF gk_public.exports
 LANGUAGE sql
AS $function$
  with x as (select * from unnest(ids, saga_ids) x(id, saga_id)),
  moved as (
    update gk_public.exports e
       set state = 'live', operating_saga_id = null, url = n.address || gk_private.exports_blob_path(e.attachment_id),
           attempts = 0, live_at = now(), state_changed_at = now(), saga_queued_until = null
      from x, gk_public.export_nodes n
     where e.id = x.id and e.operating_saga_id = x.saga_id and e.state = 'assigning'
       and n.id = e.node_id and e.attachment_id = x.saga_id
    returning e.*)
  select * from moved
  union all
  select e.* from gk_public.exports e join x on e.id = x.id where e.state = 'live' and e.attachment_id = x.saga_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_mark_for_deletion()
 RETURNS integer
 LANGUAGE sql
AS $function$
  with marked as (
    update gk_public.exports e set delete_requested_at = now()
      from gk_public.export_nodes n
     where n.state = 'expunged' and e.node_id = n.id and e.state <> 'deleted' and e.delete_requested_at is null
    returning 1)
  select count(*)::int from marked;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_queued_overdue(max_items integer, max_requeues integer DEFAULT 5, OUT released integer, OUT requeued integer, OUT failed uuid[])
 RETURNS record
 LANGUAGE sql
AS $function$
  with due as (
    select e.id, s.id as saga_id, s.name, (s.id is not null and s.finished_at is null) as running, e.saga_requeues
      from gk_public.exports e left join gk_public.sagas s on s.id = coalesce(e.operating_saga_id, e.saga_id)
     where e.saga_queued_until < now()
     order by e.saga_queued_until limit max_items
       for update of e skip locked),
  backlog as (
    select n.name, gk_private.task_backlog(n.name) as busy from (select distinct name from due where running) n),
  act as (
    select d.id, d.saga_id, d.name,
           case when not d.running then 'release'
                when b.busy then 'renew'
                when d.saga_requeues >= max_requeues then 'fail'
                else 'requeue' end as what
      from due d left join backlog b on b.name = d.name),
  gave_up as (
    update gk_public.sagas s
       set state = 'failed', failed_step = s.steps[s.step + 1], finished_at = now(), updated_at = now(),
           error = format('not driven after %s re-enqueues over %s each: no worker knows its steps (%s) — a saga of another release?; its record was given back',
                          max_requeues, gk_private.bin_lease(), array_to_string(s.steps, ', '))
      from act a
     where a.what = 'fail' and s.id = a.saga_id and s.finished_at is null
    returning s.id),
  moved as (
    update gk_public.exports e
       set saga_queued_until = case when a.what in ('renew', 'requeue') then now() + gk_private.bin_lease() end,
           saga_requeues = e.saga_requeues + case when a.what = 'requeue' then 1 else 0 end,
           state = case when a.what in ('release', 'fail') and e.state = 'assigning' then 'requested' else e.state end,
           operating_saga_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.operating_saga_id end,
           node_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.node_id end,
           attachment_id = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.attachment_id end,
           url = case when a.what in ('release', 'fail') and e.state = 'assigning' then null else e.url end,
           state_changed_at = case when a.what in ('release', 'fail') and e.state = 'assigning' then now() else e.state_changed_at end
      from act a
     where e.id = a.id
    returning e.id, a.what),
  enqueued as (
    select gk_private.saga_enqueue(a.saga_id, a.name) from act a where a.what = 'requeue')
  select (select count(*) from moved where what in ('release', 'fail'))::int, (select count(*) from enqueued)::int,
         (select coalesce(array_agg(id), '{}') from gave_up);
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_release_create(id uuid, saga_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.exports e
     set state = 'requested', operating_saga_id = null, node_id = null, attachment_id = null, url = null, state_changed_at = now()
   where e.id = exports_release_create.id and e.operating_saga_id = exports_release_create.saga_id and e.state = 'assigning';
  -- A saga that never took the record (another had it, no node) gives it back to the changeset.
  update gk_public.exports e set saga_queued_until = null
   where e.id = exports_release_create.id and e.saga_id = exports_release_create.saga_id and e.saga_queued_until is not null;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_release_delete(id uuid, saga_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.exports e set state = 'live', operating_saga_id = null, state_changed_at = now()
   where e.id = exports_release_delete.id and e.operating_saga_id = exports_release_delete.saga_id and e.state = 'deleting';
  update gk_public.exports e set saga_queued_until = null
   where e.id = exports_release_delete.id and e.saga_id = exports_release_delete.saga_id and e.saga_queued_until is not null;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_resource_exists(resource_type gk_public.export_resource_type, resource_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select case exports_resource_exists.resource_type
           when 'image' then exists (select 1 from gk_public.images i where i.id = exports_resource_exists.resource_id)
         end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_sagas_started(export_ids uuid[], saga_ids uuid[])
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.exports e set saga_id = x.saga_id, saga_queued_until = now() + gk_private.bin_lease(), saga_requeues = 0
    from unnest(export_ids, saga_ids) x(export_id, saga_id)
   where e.id = x.export_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_settle_pending(max_items integer, saga_name text DEFAULT NULL::text, saga_steps text[] DEFAULT NULL::text[], batch_size integer DEFAULT 25)
 RETURNS TABLE(taken integer, requested integer, marked integer, started uuid[])
 LANGUAGE sql
AS $function$
  -- Every lookup here is an index probe per entry, written so that no plan can hash a whole
  -- table: LIMIT max_items is estimated at a tenth of the queue, and as joins (or EXISTS, which
  -- the planner may hash too) that chose to read every queued entry, image and record in each
  -- round of 250 — the queue's size and the images' count per round. A subquery with LIMIT stays
  -- a per-row probe; a resource has at most one non-deleted record (exports_one_per_resource).
  with taken as (
    delete from gk_private.export_pending p
     where p.id = any(array(select q.id from gk_private.export_pending q order by q.id limit max_items for update skip locked))
    returning p.resource_type, p.resource_id),
  res as (
    select d.resource_type, d.resource_id, i.present is not null as present, x.id as record_id, x.unmarked
      from (select distinct t.resource_type, t.resource_id from taken t) d
      left join lateral (select true as present from gk_public.images i
                          where d.resource_type = 'image' and i.id = d.resource_id limit 1) i on true
      left join lateral (select e.id, e.delete_requested_at is null as unmarked from gk_public.exports e
                          where e.resource_type = d.resource_type and e.resource_id = d.resource_id and e.state <> 'deleted'
                          limit 1) x on true),
  marked as (
    update gk_public.exports e set delete_requested_at = now()
     where e.id = any(array(select r.record_id from res r where not r.present and r.unmarked))
       and e.state <> 'deleted' and e.delete_requested_at is null
    returning 1),
  -- With a saga: each new record is written already queued with its create saga (one row
  -- version, not a second update by exports_sagas_started) and, when an in-service node with a
  -- fresh heartbeat exists, already taken by it and placed as its take would (assigning, this
  -- saga's lock and generation 1, round the nodes from a random one, attachment id = saga id):
  -- the saga's take then finds its record taken and writes nothing. The lease stays until the
  -- record is live or given back (exports_queued_overdue covers a saga that dies before).
  nodes as (
    select coalesce(array_agg(n.id order by n.id), '{}') as ids, floor(random() * 1024)::int as r
      from gk_public.export_nodes n where saga_name is not null and n.state = 'in_service' and n.expires_at > now()),
  fresh as (
    select r.resource_type, r.resource_id, case when saga_name is not null then gen_random_uuid() end as saga_id,
           case when saga_name is not null and cardinality(nodes.ids) > 0
                then nodes.ids[1 + (row_number() over () + nodes.r) % cardinality(nodes.ids)] end as node_id
      from res r cross join nodes
     where r.present and r.record_id is null),
  requested as (
    insert into gk_public.exports (resource_type, resource_id, saga_id, saga_queued_until,
                                   state, operating_saga_id, node_id, attachment_id, generation, attempts)
    select f.resource_type, f.resource_id, f.saga_id, case when f.saga_id is not null then now() + gk_private.bin_lease() end,
           case when f.node_id is not null then 'assigning' else 'requested' end,
           case when f.node_id is not null then f.saga_id end, f.node_id,
           case when f.node_id is not null then f.saga_id end,
           case when f.node_id is not null then 1 else 0 end, case when f.node_id is not null then 1 else 0 end
      from fresh f
    on conflict (resource_type, resource_id) where state <> 'deleted' do nothing
    returning id, saga_id, generation),
  sagas as (
    insert into gk_public.sagas (id, name, steps, params)
    select r.saga_id, saga_name, saga_steps, jsonb_build_object('export_id', r.id, 'generation', 1)
      from requested r where r.saga_id is not null
    returning id),
  batched as (
    select (row_number() over (order by id) - 1) / batch_size as b, id from sagas),
  jobs as (
    select gk_private.enqueue_many(saga_name, array(
      select jsonb_build_object('saga_ids', jsonb_agg(id)) from batched group by b)) as done
     where saga_name is not null)
  select (select count(*)::int from taken), (select count(*)::int from requested), (select count(*)::int from marked),
         (select coalesce(array_agg(r.id), '{}') from requested r, (select count(*) from jobs) j where r.saga_id is not null);
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_take_for_create_batch(ids uuid[], saga_ids uuid[], generations bigint[])
 RETURNS TABLE(id uuid, export_id uuid, resource_type gk_public.export_resource_type, resource_id uuid, node_id uuid, worker_id uuid, address text, attachment_id uuid, nodes integer)
 LANGUAGE sql
 ROWS 25
AS $function$
  with x as (select * from unnest(ids, saga_ids, generations) with ordinality x(id, saga_id, generation, o)),
  nodes as (
    select coalesce(array_agg(n.id order by n.id), '{}') as ids, floor(random() * 1024)::int as r
      from gk_public.export_nodes n where n.state = 'in_service' and n.expires_at > now()),
  taken as (
    update gk_public.exports e
       set state = 'assigning', operating_saga_id = x.saga_id, saga_id = x.saga_id,
           generation = x.generation, attempts = e.attempts + 1, state_changed_at = now(), saga_queued_until = null,
           node_id = nodes.ids[1 + (x.o::int + nodes.r) % cardinality(nodes.ids)], attachment_id = x.saga_id
      from x, nodes
     where e.id = x.id and e.state = 'requested' and e.operating_saga_id is null
       and e.delete_requested_at is null and e.generation < x.generation and cardinality(nodes.ids) > 0
    returning e.id, e.resource_type, e.resource_id, e.node_id, e.attachment_id),
  mine as (
    select * from taken
    union all
    select e.id, e.resource_type, e.resource_id, e.node_id, e.attachment_id from gk_public.exports e join x on e.id = x.id
     where e.operating_saga_id = x.saga_id and e.state = 'assigning' and e.generation = x.generation and e.node_id is not null)
  select x.id, m.id, m.resource_type, m.resource_id, m.node_id, n.worker_id, n.address, m.attachment_id, cardinality(nodes.ids)
    from x cross join nodes left join mine m on m.id = x.id left join gk_public.export_nodes n on n.id = m.node_id
   order by x.o;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_take_for_delete_batch(ids uuid[], saga_ids uuid[], generations bigint[])
 RETURNS SETOF gk_public.exports
 LANGUAGE sql
AS $function$
  with x as (select * from unnest(ids, saga_ids, generations) x(id, saga_id, generation)),
  taken as (
    update gk_public.exports e
       set state = 'deleting', operating_saga_id = x.saga_id, saga_id = x.saga_id,
           generation = x.generation, attempts = e.attempts + 1, state_changed_at = now(), saga_queued_until = null
      from x
     where e.id = x.id and e.state = 'live' and e.operating_saga_id is null
       and e.delete_requested_at is not null and e.generation < x.generation
    returning e.*)
  select * from taken
  union all
  select e.* from gk_public.exports e join x on e.id = x.id
   where e.operating_saga_id = x.saga_id and e.state = 'deleting' and e.generation = x.generation;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_to_verify(max_items integer)
 RETURNS TABLE(export_id uuid, node_id uuid, worker_id uuid, address text, attachment_id uuid)
 LANGUAGE sql
 STABLE
AS $function$
  select e.id, n.id, n.worker_id, n.address, e.attachment_id
    from (select * from gk_public.exports x
           where x.state = 'live' and x.delete_requested_at is null
           order by x.verified_at nulls first limit max_items) e
    join gk_public.export_nodes n on n.id = e.node_id
   where n.state = 'in_service' and n.expires_at > now();
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_undelete(id uuid, saga_id uuid, generation bigint)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.exports e set state = 'deleting', operating_saga_id = exports_undelete.saga_id, deleted_at = null, state_changed_at = now()
   where e.id = exports_undelete.id and e.state = 'deleted' and e.saga_id = exports_undelete.saga_id
     and e.generation = exports_undelete.generation;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_unlive(id uuid, saga_id uuid, generation bigint)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.exports e set state = 'assigning', operating_saga_id = exports_unlive.saga_id, url = null, live_at = null, state_changed_at = now()
   where e.id = exports_unlive.id and e.state = 'live' and e.attachment_id = exports_unlive.saga_id
     and e.generation = exports_unlive.generation;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_unreferenced_attachments(node_id uuid, attachment_ids uuid[])
 RETURNS uuid[]
 LANGUAGE sql
 STABLE
AS $function$
  select coalesce(array_agg(a.id order by a.id), '{}')
    from unnest(attachment_ids) a(id)
   where not exists (
     select 1 from gk_public.exports e
      where e.attachment_id = a.id and e.state in ('assigning', 'live', 'deleting')
        and e.node_id = exports_unreferenced_attachments.node_id);
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_verified(present uuid[], lost uuid[])
 RETURNS integer
 LANGUAGE sql
AS $function$
  update gk_public.exports e set verified_at = now() where e.id = any(present) and e.state = 'live';
  with marked as (
    update gk_public.exports e set delete_requested_at = now()
     where e.id = any(lost) and e.state = 'live' and e.delete_requested_at is null
    returning 1)
  select count(*)::int from marked;
$function$;

CREATE OR REPLACE FUNCTION gk_private.exports_verify_claim(every interval, always boolean)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  with prev as (select s.last_verify_at as at from gk_private.export_sweeps s for update),
  claimed as (
    update gk_private.export_sweeps s set last_verify_at = now()
      from prev p
     where always or p.at is null or p.at < now() - every
    returning p.at)
  select exists (select 1 from claimed c where always or c.at is not null);
$function$;

CREATE OR REPLACE FUNCTION gk_private.images_valid_hardware_ids(ids text[])
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select cardinality(ids) between 1 and 64
     and array_ndims(ids) = 1
     and (select count(distinct i) = count(*) and bool_and(i ~ '^[[:graph:]]{1,100}$') from unnest(ids) i)
$function$;

CREATE OR REPLACE FUNCTION gk_private.local_ca_revoke(authority text, serials text[], reason text)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  unknown text[];
  revoked int;
begin
  if reason is null or reason not in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation') then
    raise exception 'invalid revocation reason %', coalesce(reason, 'null') using errcode = '22023';
  end if;
  -- Bad input changes nothing: refuse the whole batch when any serial is unknown.
  select array_agg(s order by s) into unknown
    from unnest(serials) as s
   where not exists (
     select 1 from gk_private.local_ca_certificates c
      where c.authority = local_ca_revoke.authority and c.serial = s);
  if unknown is not null then
    raise exception 'local CA %: unknown serial(s): %', authority, array_to_string(unknown[1:10], ', ')
      using errcode = 'P0002';
  end if;
  -- Already revoked stays as it was (first revocation time and reason win): idempotent.
  update gk_private.local_ca_certificates c
     set status = 'revoked', revoked_at = now(), reason = local_ca_revoke.reason
   where c.authority = local_ca_revoke.authority
     and c.serial = any (serials)
     and c.status = 'issued';
  get diagnostics revoked = row_count;
  if revoked > 0 then
    update gk_private.local_ca_authorities a
       set revocation_seq = a.revocation_seq + 1
     where a.name = local_ca_revoke.authority;
  end if;
  return revoked;
end;
$function$;
comment on function gk_private.local_ca_revoke(text,text[],text) is 'Revokes serials of a local CA (idempotent); unknown serials → P0002 and nothing changes.';

CREATE OR REPLACE FUNCTION gk_private.provisioning_credentials_expire_with(certificate_ids uuid[])
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.provisioning_credentials p set expires_at = c.not_after
    from (select c.provisioning_credential_id as cred, min(c.not_after) as not_after
            from gk_public.certificates c
           where c.provisioning_credential_id in (select x.provisioning_credential_id from gk_public.certificates x
                                                   where x.id = any(certificate_ids))
           group by 1) c
   where p.id = c.cred and p.expires_at is distinct from c.not_after;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_item_completed(id bigint)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  update gk_public.purge_items p set completed_at = now(), last_error = null
   where p.id = purge_item_completed.id and p.completed_at is null
  returning true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_item_failed(id bigint, error text)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.purge_items p
     set attempts = p.attempts + 1,
         last_error = left(error, 2000),
         next_attempt_at = now() + gk_private.bin_backoff(p.attempts + 1) + gk_private.bin_lease()
   where p.id = purge_item_failed.id and p.completed_at is null;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_item_progress(id bigint, cursor text, pending_until text, counted bigint)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.purge_items p
     set progress_after = coalesce(purge_item_progress.cursor, p.progress_after),
         progress_pending_until = coalesce(purge_item_progress.pending_until, p.progress_pending_until),
         progress_count = greatest(p.progress_count, coalesce(purge_item_progress.counted, 0)),
         next_attempt_at = now() + gk_private.bin_lease()
   where p.id = purge_item_progress.id and p.completed_at is null;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_items_enqueue(ids bigint[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  k record;
begin
  for k in
    select b.purge_task as task, array_agg(jsonb_build_object('id', p.id) order by p.id) as payloads
      from gk_public.purge_items p
      join gk_public.bin_kinds b on b.kind = p.kind
     where p.id = any(ids) and p.completed_at is null and b.purge_task is not null
     group by b.purge_task
  loop
    perform gk_private.enqueue_many(k.task, k.payloads);
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_items_redispatch(kind text, max_items integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_task text := (select b.purge_task from gk_public.bin_kinds b where b.kind = purge_items_redispatch.kind);
  v_busy boolean := gk_private.task_backlog(v_task);
  v_ids bigint[];
begin
  if v_busy then
    return jsonb_build_object('redispatched', 0, 'busy', true);
  end if;
  with due as (
    select p.id from gk_public.purge_items p
     where p.kind = purge_items_redispatch.kind and p.completed_at is null and p.next_attempt_at <= now()
     order by p.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.purge_items p set next_attempt_at = now() + gk_private.bin_lease()
      from due where p.id = due.id
    returning p.id)
  select array_agg(id order by id) into v_ids from bumped;
  perform gk_private.enqueue_many(v_task, array(select jsonb_build_object('id', i) from unnest(v_ids) i));
  return jsonb_build_object('redispatched', coalesce(cardinality(v_ids), 0), 'busy', false);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.purge_items_retry(kind text, ref text)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  update gk_public.purge_items p set retry_requested_at = clock_timestamp()
   where p.kind = purge_items_retry.kind and p.ref = purge_items_retry.ref and p.completed_at is null
  returning true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_failed_jobs(max_rows integer DEFAULT 20)
 RETURNS TABLE(id bigint, task text, attempts integer, last_error text, updated_at timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
  select j.id, j.task_identifier, j.attempts::int, j.last_error, j.updated_at
    from graphile_worker.jobs j
   where j.locked_at is null and j.attempts >= j.max_attempts
   order by j.updated_at desc
   limit max_rows;
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_jobs_by_task()
 RETURNS TABLE(task text, ready integer, scheduled integer, running integer, stalled integer, retrying integer, failed integer, oldest_due_s double precision)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with dead as (select array(select w.id from gk_private.queue_workers w where w.expires_at < now()) as ids)
  select j.task_identifier,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())::int,
         count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at > now())::int,
         count(*) filter (where j.locked_at is not null and not (j.locked_by = any(d.ids)))::int,
         count(*) filter (where j.locked_at is not null and j.locked_by = any(d.ids))::int,
         count(*) filter (where j.locked_at is null and j.attempts > 0 and j.attempts < j.max_attempts and j.last_error is not null)::int,
         count(*) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int,
         extract(epoch from now() - min(j.run_at) filter (where j.attempts < j.max_attempts and j.run_at <= now()))::float8
    from graphile_worker.jobs j cross join dead d
   group by j.task_identifier
   order by j.task_identifier;
$function$;
grant execute on function gk_private.queue_jobs_by_task() to gk_api;

CREATE OR REPLACE FUNCTION gk_private.queue_reap_workers(max_workers integer)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_dead text[];
  v_result jsonb := jsonb_build_object('released_jobs', 0, 'superseded_jobs', 0, 'exhausted_jobs', 0, 'closed_activations', '[]'::jsonb);
begin
  v_dead := array(
    select w.id from gk_private.queue_workers w
     where w.expires_at < now()
     order by w.expires_at
     limit max_workers
       for update skip locked);
  if cardinality(v_dead) > 0 then
    v_result := gk_private.queue_workers_release(v_dead, 'its worker stopped heartbeating');
  end if;
  return v_result || jsonb_build_object(
    'reaped_workers', to_jsonb(v_dead),
    'live_workers', (select count(*) from gk_private.queue_workers w where w.expires_at >= now()),
    'more', exists (select 1 from gk_private.queue_workers w where w.expires_at < now() and w.id <> all(v_dead)));
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_worker_heartbeat(worker_id text, hostname text, pid integer, ttl_s integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
declare
  v_new boolean;
  v_dead text[];
begin
  if ttl_s is null or ttl_s not between 1 and 86400 then
    raise exception 'ttl_s must be between 1 and 86400 seconds, not %', ttl_s using errcode = '22023';
  end if;
  insert into gk_private.queue_workers as w (id, hostname, pid, expires_at)
  values (worker_id, left(hostname, 255), pid, now() + make_interval(secs => ttl_s))
  on conflict (id) do update set heartbeat_at = now(), expires_at = excluded.expires_at
  returning (xmax = 0) into v_new;
  v_dead := array(select w.id from gk_private.queue_workers w where w.expires_at < now());
  if cardinality(v_dead) = 0 or not exists (select 1 from gk_public.reconcilers r where r.name = 'queue__reap_workers') then
    return v_new;
  end if;
  perform gk_private.queue_workers_release(array_agg(distinct j.locked_by),
                                           'its worker stopped heartbeating while running the reaper')
     from graphile_worker.jobs j
    where j.task_identifier = 'queue__reap_workers' and j.locked_by = any(v_dead)
   having count(*) > 0;
  if not exists (select 1 from graphile_worker.jobs j
                  where j.task_identifier = 'queue__reap_workers'
                    and (j.locked_at is not null or (j.run_at <= now() and j.attempts < j.max_attempts))) then
    perform gk_private.reconciler_activate('queue__reap_workers');
  end if;
  return v_new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_workers_deregister(worker_ids text[])
 RETURNS void
 LANGUAGE sql
AS $function$
  delete from gk_private.queue_workers w where w.id = any(worker_ids);
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_workers_list()
 RETURNS TABLE(id text, hostname text, pid integer, started_at timestamp with time zone, heartbeat_age_s double precision, expired boolean, jobs integer)
 LANGUAGE sql
 STABLE
AS $function$
  select w.id, w.hostname, w.pid, w.started_at, extract(epoch from now() - w.heartbeat_at)::float8, w.expires_at < now(),
         (select count(*)::int from graphile_worker.jobs j where j.locked_by = w.id)
    from gk_private.queue_workers w
   order by w.started_at, w.id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.queue_workers_release(worker_ids text[], reason text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_held int;
  v_superseded bigint[];
  v_exhausted bigint[];
  v_activations bigint[];
begin
  select count(*)::int,
         coalesce(array_agg(j.id order by j.id) filter (where j.superseded), '{}'),
         coalesce(array_agg(j.id order by j.id) filter (where j.attempts >= j.max_attempts and not j.superseded), '{}')
    into v_held, v_superseded, v_exhausted
    from (select x.id, x.attempts, x.max_attempts,
                 (x.attempts >= x.max_attempts and x.key is null and x.updated_at > x.locked_at) as superseded
            from graphile_worker.jobs x where x.locked_by = any(worker_ids)) j;
  perform graphile_worker.force_unlock_workers(worker_ids);
  perform graphile_worker.complete_jobs(v_superseded);
  perform graphile_worker.permanently_fail_jobs(v_exhausted, left(reason || ' during its last attempt', 4000));
  v_activations := gk_private.activations_close_orphaned(worker_ids, reason);
  delete from gk_private.queue_workers w where w.id = any(worker_ids);
  return jsonb_build_object(
    'released_jobs', v_held - cardinality(v_superseded) - cardinality(v_exhausted),
    'superseded_jobs', cardinality(v_superseded),
    'exhausted_jobs', cardinality(v_exhausted),
    'closed_activations', to_jsonb(v_activations));
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.reconciler_activate(name text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v_r gk_public.reconcilers;
begin
  select * into v_r from gk_public.reconcilers r where r.name = reconciler_activate.name;
  if not found then
    raise exception 'no reconciler named % (known: %)', name,
      coalesce((select string_agg(r.name, ', ' order by r.name) from gk_public.reconcilers r), 'none registered')
      using errcode = 'P0002';
  end if;
  perform gk_private.enqueue(v_r.name, '{}'::jsonb,
                             job_key := v_r.job_key,
                             run_at := coalesce(reconciler_activate.run_at, now()),
                             queue_name := v_r.queue_name,
                             job_key_mode := case when reconciler_activate.run_at is null then 'replace' else 'preserve_run_at' end);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.reconcilers_register(reconcilers jsonb)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  v_n int;
begin
  delete from gk_public.reconcilers g
   where g.name not in (select x.name from jsonb_to_recordset(reconcilers) as x (name text));
  insert into gk_public.reconcilers as g (name, description, schedule, job_key, queue_name)
  select x.name, x.description, x.schedule, x.job_key, x.queue_name
    from jsonb_to_recordset(reconcilers) as x (name text, description text, schedule text, job_key text, queue_name text)
  on conflict (name) do update
    set description = excluded.description, schedule = excluded.schedule, job_key = excluded.job_key,
        queue_name = excluded.queue_name
  where (g.description, g.schedule, g.job_key, g.queue_name)
        is distinct from (excluded.description, excluded.schedule, excluded.job_key, excluded.queue_name);
  get diagnostics v_n = row_count;
  -- A task that is no longer a reconciler leaves the metrics (its history stays until retention).
  delete from gk_private.activation_tasks t
   where t.task not in (select x.name from jsonb_to_recordset(reconcilers) as x (name text))
     and not exists (select 1 from gk_public.activations a where a.task = t.task and a.status = 'running');
  return v_n;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune(kind text, OUT deleted bigint, OUT max_rows integer, OUT more boolean)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
declare
  v_policy gk_public.retention_policies;
  v_fn regprocedure;
begin
  select * into v_policy from gk_public.retention_policies p where p.kind = retention_prune.kind;
  if not found then
    raise exception 'no retention policy for kind %', kind using errcode = 'P0002';
  end if;
  v_fn := gk_private.retention_prune_function(kind);
  if v_fn is null then
    raise exception 'retention kind % has no function gk_private.retention_prune__%(timestamptz, integer)', kind, kind
      using errcode = '42883';
  end if;
  max_rows := v_policy.max_per_activation;
  execute format('select %s($1, $2)', v_fn::oid::regproc) into deleted using now() - v_policy.retention, max_rows;
  deleted := coalesce(deleted, 0);
  more := deleted >= max_rows;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__activations(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with doomed as (
    select a.id from gk_public.activations a
     where a.started_at < cutoff and a.status <> 'running'
       and not exists (select 1 from gk_private.activation_tasks t where a.id in (t.last_activation_id, t.last_success_id))
     order by a.id
     limit max_rows),
  gone as (delete from gk_public.activations a using doomed d where a.id = d.id returning 1)
  select count(*) from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__audit_events(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with doomed as (
    select e.id from gk_public.audit_events e where e.at < cutoff order by e.at limit max_rows),
  gone as (delete from gk_public.audit_events e using doomed d where e.id = d.id returning 1)
  select count(*) from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__ecu_telemetry(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
declare
  r record;
  v_rows bigint := 0;
  v_n bigint;
begin
  for r in
    select c.relname, to_date(substring(c.relname from 'ecu_telemetry_p(\d{8})$'), 'YYYYMMDD') as day
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_namespace n on n.oid = c.relnamespace
     where i.inhparent = 'gk_public.ecu_telemetry'::regclass and n.nspname = 'gk_private'
       and c.relname ~ '^ecu_telemetry_p\d{8}$'
     order by 1
  loop
    exit when v_rows >= max_rows;
    continue when (r.day + 1)::timestamp at time zone 'utc' > cutoff;
    execute format('select count(*) from gk_private.%I', r.relname) into v_n;
    execute format('drop table gk_private.%I', r.relname);
    v_rows := v_rows + v_n;
  end loop;
  if v_rows < max_rows then
    with doomed as (
      select t.ctid from gk_private.ecu_telemetry_default t where t.recorded_at < cutoff limit max_rows - v_rows),
    gone as (delete from gk_private.ecu_telemetry_default t using doomed d where t.ctid = d.ctid returning 1)
    select v_rows + count(*) into v_rows from gone;
  end if;
  return v_rows;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__failed_jobs(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  select count(*) from graphile_worker.complete_jobs(array(
    select j.id from graphile_worker.jobs j
     where j.locked_at is null and j.attempts >= j.max_attempts and j.updated_at < cutoff
     order by j.updated_at
     limit max_rows));
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__local_ca_certificates(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with doomed as (
    select c.id from gk_private.local_ca_certificates c
     where c.status <> 'pending' and c.not_after < least(cutoff, now() - interval '1 day')
     order by c.not_after
     limit max_rows),
  gone as (delete from gk_private.local_ca_certificates c using doomed d where c.id = d.id returning 1)
  select count(*) from gone;
$function$;
comment on function gk_private.retention_prune__local_ca_certificates(timestamp with time zone,integer) is 'Retention: deletes local CA certificates that expired before the cutoff, at most max_rows per call.';

CREATE OR REPLACE FUNCTION gk_private.retention_prune__purge_items(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with doomed as (
    select p.id from gk_public.purge_items p
     where p.completed_at is not null and p.completed_at < cutoff
     order by p.completed_at
     limit max_rows),
  gone as (delete from gk_public.purge_items p using doomed d where p.id = d.id returning 1)
  select count(*) from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__robot_manifests(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with doomed as (
    select m.id from gk_public.robot_manifests m where m.received_at < cutoff order by m.received_at limit max_rows),
  gone as (delete from gk_public.robot_manifests m using doomed d where m.id = d.id returning 1)
  select count(*) from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__rollout_events(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  with doomed as (
    select e.id from gk_public.rollout_events e where e.received_at < cutoff order by e.received_at limit max_rows),
  gone as (delete from gk_public.rollout_events e using doomed d where e.id = d.id returning 1)
  select count(*) from gone
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__sagas(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with gone as (
    delete from gk_public.sagas s
     where s.id in (select id from gk_public.sagas where finished_at < cutoff order by finished_at limit max_rows)
    returning 1)
  select count(*) from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.retention_prune__tuf_metadata(cutoff timestamp with time zone, max_rows integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  n bigint;
begin
  create temp table if not exists tuf_pruned (team_id uuid, file text) on commit drop;
  truncate tuf_pruned;

  with published as (
    select c.team_id, c.timestamp_version,
           (ts.document::jsonb #>> '{signed,meta,snapshot.json,version}')::int as snapshot_version
      from gk_private.tuf_upload_cursors c
      join gk_public.tuf_metadata ts
        on ts.team_id = c.team_id and ts.role = 'timestamp' and ts.version = c.timestamp_version
  ), keep_from as (
    select p.team_id, 'timestamp'::text as role, p.timestamp_version as version from published p
    union all
    select p.team_id, 'snapshot', p.snapshot_version from published p
    union all
    select p.team_id, left(m.key, -5), (m.value ->> 'version')::int
      from published p
      join gk_public.tuf_metadata s
        on s.team_id = p.team_id and s.role = 'snapshot' and s.version = p.snapshot_version
     cross join lateral jsonb_each(s.document::jsonb -> 'signed' -> 'meta') m
  ), doomed as (
    select d.id
      from gk_public.tuf_metadata d
      join keep_from k on d.team_id = k.team_id and d.role = k.role and d.version < k.version
     where d.role <> 'root' and d.uploaded_at is not null and d.created_at < cutoff
     order by d.created_at, d.id
     limit max_rows
  ), deleted as (
    delete from gk_public.tuf_metadata d
     using (select distinct x.id from doomed x) x
     where d.id = x.id
    returning d.team_id, d.role, d.version
  )
  insert into tuf_pruned
  select d.team_id, case when d.role = 'timestamp' then null else d.version || '.' || d.role || '.json' end
    from deleted d;

  get diagnostics n = row_count;

  perform gk_private.enqueue_many('tuf__delete_blobs', array(
    select jsonb_build_object('team_id', c.team_id, 'files', jsonb_agg(c.file order by c.file))
      from (select p.team_id, p.file, (row_number() over (partition by p.team_id order by p.file) - 1) / 1000 as chunk
              from tuf_pruned p where p.file is not null) c
     group by c.team_id, c.chunk
  ));
  return n;
end;
$function$;
comment on function gk_private.retention_prune__tuf_metadata(timestamp with time zone,integer) is 'Retention kind tuf_metadata: deletes superseded, uploaded, non-root metadata versions older than cutoff (at most max_rows); never what the published timestamp leads to.';

CREATE OR REPLACE FUNCTION gk_private.retention_prune_function(kind text)
 RETURNS regprocedure
 LANGUAGE sql
 STABLE
AS $function$
  select to_regprocedure(format('gk_private.%I(timestamptz, integer)', 'retention_prune__' || kind));
$function$;

CREATE OR REPLACE FUNCTION gk_private.robot_certificate_identity(serial text)
 RETURNS TABLE(certificate_id uuid, robot_id uuid, team_id uuid)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.id, r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_certificate_identity.serial
     and c.profile = 'robot'
     and c.status = 'issued'
     and c.not_after > now();
$function$;
grant execute on function gk_private.robot_certificate_identity(text) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_certificate_subject(robot_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  select jsonb_build_object('organization', t.name, 'units',
           jsonb_build_array('name=' || r.name)
           || coalesce((select jsonb_agg('hw=' || h.hardware_id order by h.hardware_id)
                          from (select distinct e.hardware_id from gk_public.ecus e where e.robot_id = r.id) h), '[]')
           || coalesce((select jsonb_agg('group=' || g.name order by g.name)
                          from gk_public.robot_group_members m join gk_public.robot_groups g on g.id = m.group_id
                         where m.robot_id = r.id), '[]'))
    from gk_public.robots r join gk_public.teams t on t.id = r.team_id
   where r.id = robot_certificate_subject.robot_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.robot_current_certificate(robot_id uuid)
 RETURNS SETOF gk_public.certificates
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.* from gk_public.certificates c
   where c.robot_id = robot_current_certificate.robot_id and c.profile = 'robot'
     and c.status = 'issued' and c.not_after > now()
   order by c.issued_at desc, c.created_at desc
   limit 1;
$function$;

CREATE OR REPLACE FUNCTION gk_private.robot_ecu_keys(robot_id uuid)
 RETURNS TABLE(serial text, is_primary boolean, public_key text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select e.serial, e.is_primary, k.public_key
    from gk_public.ecus e left join gk_public.ecu_keys k on k.ecu_id = e.id
   where e.robot_id = robot_ecu_keys.robot_id
   order by e.serial
   limit 1000;
$function$;
grant execute on function gk_private.robot_ecu_keys(uuid) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_manifest_accepted(p_robot_id uuid, p_team_id uuid, p_body jsonb, p_reports jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v_manifest gk_public.robot_manifests;
  v_bad record;
  v_row record;
  v_event text;
  v_results jsonb := '[]'::jsonb;
  v_reports jsonb;
begin
  if p_reports is null or jsonb_typeof(p_reports) <> 'array' or jsonb_array_length(p_reports) not between 1 and 256 then
    raise exception 'a manifest carries 1 to 256 version reports' using errcode = '22023';
  end if;
  perform pg_advisory_xact_lock(hashtextextended('robot_manifest:' || p_robot_id::text, 0));
  if not exists (select 1 from gk_public.robots r where r.id = p_robot_id and r.team_id = p_team_id) then
    return null;
  end if;

  -- The reports with their ECU and its last accepted report, read once (no temp table: its
  -- catalog writes cost more than the rest of the check).
  select coalesce(jsonb_agg(jsonb_build_object(
           'ecu_id', e.id, 'serial', x.serial, 'counter', x.counter, 'filepath', x.filepath,
           -- A report without a time (aktualizr's) is taken at the time it is received, never
           -- before the ECU's last accepted one; only a time the report carries is checked.
           'reported_at', coalesce(x.time, greatest(now(), s.reported_at)), 'time_given', x.time is not null,
           'length', x.length, 'sha256', x.sha256, 'sha512', x.sha512,
           'last_counter', s.report_counter, 'last_reported_at', s.reported_at) order by x.serial), '[]'::jsonb)
    into v_reports
    from jsonb_to_recordset(p_reports) as x (serial text, counter bigint, time timestamptz, filepath text, length bigint,
                                             sha256 text, sha512 text)
    left join gk_public.ecus e on e.robot_id = p_robot_id and e.team_id = p_team_id and e.serial = x.serial
    left join gk_public.ecu_version_reports s on s.ecu_id = e.id;

  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r where r.ecu_id is null order by r.serial limit 1;
  if found then
    raise exception 'ECU % is not an ECU of this robot', v_bad.serial using errcode = 'P0002';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.counter is null or r.filepath is null or r.length is null
   limit 1;
  if found then
    raise exception 'version report of ECU % lacks its counter or installed image', v_bad.serial using errcode = '22023';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.counter <= r.last_counter or r.reported_at < r.last_reported_at
   order by r.serial limit 1;
  if found then
    if v_bad.counter <= v_bad.last_counter then
      raise exception 'replayed manifest: ECU %''s report_counter % is not above the last accepted %', v_bad.serial, v_bad.counter, v_bad.last_counter
        using errcode = '55000';
    end if;
    raise exception 'replayed manifest: ECU %''s report time % is before the last accepted %', v_bad.serial,
      to_char(v_bad.reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      to_char(v_bad.last_reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') using errcode = '55000';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.time_given
     and r.reported_at not between now() - gk_private.robot_manifest_max_skew() and now() + gk_private.robot_manifest_max_skew()
   order by r.serial limit 1;
  if found then
    raise exception 'ECU %''s report time % is more than % from the server''s clock (%)', v_bad.serial,
      to_char(v_bad.reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), gk_private.robot_manifest_max_skew(),
      to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') using errcode = '22023';
  end if;

  v_manifest := gk_private.robot_manifest_received(p_robot_id, p_team_id, true, p_body);

  for v_row in
    with targets as (
      select t.ecu_serial, t.rollout_id, t.image_name || '-' || t.image_version as filepath, t.length, t.sha256, t.sha512, i.id as image_id
        from gk_private.director_targets(array[p_robot_id]) t
        join gk_public.images i on i.team_id = p_team_id and i.name = t.image_name and i.version = t.image_version
    ), compared as (
      select r.*, t.rollout_id, t.image_id as expected_image_id, t.filepath as expected,
             t.filepath is not null and r.filepath = t.filepath and r.length = t.length
               and (r.sha256 is null or r.sha256 = t.sha256) and (r.sha512 is null or r.sha512 = t.sha512) as matches,
             ii.id is not null and r.filepath = ii.name || '-' || ii.version and r.length = ii.length
               and (r.sha256 is null or r.sha256 = ii.sha256) and (r.sha512 is null or r.sha512 = ii.sha512) as runs_installed
        from gk_private.robot_manifest_reports(v_reports) r
        join gk_public.ecus e on e.id = r.ecu_id
        left join targets t on t.ecu_serial = r.serial
        left join gk_public.images ii on ii.id = e.installed_image_id and ii.team_id = e.team_id
    )
    select c.*, case when c.matches then 'matches' when c.rollout_id is not null and c.runs_installed then 'pending' else 'discrepancy' end as verdict
      from compared c order by c.serial
  loop
    v_event := null;
    if v_row.verdict = 'matches' and v_row.rollout_id is not null then
      v_event := gk_private.rollouts_record_event(
        p_robot_id, md5(format('manifest installed %s %s %s', v_row.rollout_id, v_row.ecu_id, v_row.expected_image_id))::uuid,
        v_row.serial, 'installation_completed', format('reported installed in manifest %s', v_manifest.id));
    end if;
    insert into gk_public.ecu_version_reports as s (
      ecu_id, team_id, report_counter, reported_at, received_at, manifest_id, reported_filepath, reported_length,
      reported_sha256, reported_sha512, expected_image_id, rollout_id, verdict, detail)
    values (
      v_row.ecu_id, p_team_id, v_row.counter, v_row.reported_at, v_manifest.received_at, v_manifest.id, v_row.filepath, v_row.length,
      v_row.sha256, v_row.sha512, v_row.expected_image_id, v_row.rollout_id, v_row.verdict,
      left(case v_row.verdict
        when 'matches' then format('runs %s, as the director''s targets list', v_row.expected)
        when 'pending' then format('still runs %s; rollout %s lists %s', v_row.filepath, v_row.rollout_id, v_row.expected)
        else format('reports %s (%s bytes), which the director''s targets do not assign it; they list %s', v_row.filepath, v_row.length,
                    coalesce(v_row.expected, 'nothing for this ECU')) end, 1000))
    on conflict (ecu_id) do update set
      report_counter = excluded.report_counter, reported_at = excluded.reported_at, received_at = excluded.received_at,
      manifest_id = excluded.manifest_id, reported_filepath = excluded.reported_filepath, reported_length = excluded.reported_length,
      reported_sha256 = excluded.reported_sha256, reported_sha512 = excluded.reported_sha512,
      expected_image_id = excluded.expected_image_id, rollout_id = excluded.rollout_id, verdict = excluded.verdict, detail = excluded.detail;
    v_results := v_results || jsonb_build_object('serial', v_row.serial, 'verdict', v_row.verdict, 'expected', v_row.expected,
                                                 'rollout_id', v_row.rollout_id, 'event', v_event,
                                                 'detail', (select s.detail from gk_public.ecu_version_reports s where s.ecu_id = v_row.ecu_id));
  end loop;
  return jsonb_build_object('id', v_manifest.id::text, 'received_at', v_manifest.received_at, 'ecus', v_results);
end;
$function$;
comment on function gk_private.robot_manifest_accepted(uuid,uuid,jsonb,jsonb) is 'A verified manifest: replay check, comparison with the director''s targets, the rollout''s installation through rollouts_record_event; stored with each ECU''s report state.';
grant execute on function gk_private.robot_manifest_accepted(uuid,uuid,jsonb,jsonb) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_manifest_max_skew()
 RETURNS interval
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$ select interval '5 minutes' $function$;

CREATE OR REPLACE FUNCTION gk_private.robot_manifest_received(robot_id uuid, team_id uuid, valid boolean, body jsonb)
 RETURNS gk_public.robot_manifests
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into gk_public.robot_manifests (robot_id, team_id, valid, body)
  select r.id, r.team_id, robot_manifest_received.valid, robot_manifest_received.body
    from gk_public.robots r
   where r.id = robot_manifest_received.robot_id and r.team_id = robot_manifest_received.team_id
  returning *;
$function$;

CREATE OR REPLACE FUNCTION gk_private.robot_manifest_reports(reports jsonb)
 RETURNS TABLE(ecu_id uuid, serial text, counter bigint, reported_at timestamp with time zone, time_given boolean, filepath text, length bigint, sha256 text, sha512 text, last_counter bigint, last_reported_at timestamp with time zone)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  select * from jsonb_to_recordset(reports) as r (
    ecu_id uuid, serial text, counter bigint, reported_at timestamptz, time_given boolean, filepath text, length bigint,
    sha256 text, sha512 text, last_counter bigint, last_reported_at timestamptz)
$function$;

CREATE OR REPLACE FUNCTION gk_private.robot_presented(serial text, certificate bytea)
 RETURNS TABLE(certificate_id uuid, robot_id uuid, team_id uuid)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.id, r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_presented.serial and c.profile = 'robot' and c.status = 'issued' and c.not_after > now()
     and c.pem is not null
     and decode(regexp_replace(c.pem, '-----(BEGIN|END) CERTIFICATE-----|\s', '', 'g'), 'base64') = robot_presented.certificate;
$function$;
grant execute on function gk_private.robot_presented(text,bytea) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_presented_certificate(serial text, certificate bytea, id uuid)
 RETURNS TABLE(status text, pem text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.status, c.pem
    from gk_private.robot_presenting(robot_presented_certificate.serial, robot_presented_certificate.certificate) p
    join gk_public.certificates c on c.robot_id = p.robot_id and c.profile = 'robot'
   where c.id = robot_presented_certificate.id;
$function$;
grant execute on function gk_private.robot_presented_certificate(text,bytea,uuid) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_presented_current_certificate(serial text, certificate bytea)
 RETURNS SETOF gk_public.certificates
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.* from gk_private.robot_presenting(robot_presented_current_certificate.serial, robot_presented_current_certificate.certificate) p
   cross join lateral gk_private.robot_current_certificate(p.robot_id) c;
$function$;
grant execute on function gk_private.robot_presented_current_certificate(text,bytea) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_presented_download(serial text, certificate bytea, id uuid)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if not exists (select 1
                   from gk_private.robot_presenting(robot_presented_download.serial, robot_presented_download.certificate) p
                   join gk_public.certificates c on c.robot_id = p.robot_id and c.profile = 'robot'
                  where c.id = robot_presented_download.id) then
    raise exception 'certificate % not found', robot_presented_download.id using errcode = 'P0002';
  end if;
  return gk_public.download_certificate(robot_presented_download.id);
end;
$function$;
grant execute on function gk_private.robot_presented_download(text,bytea,uuid) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robot_presenting(serial text, certificate bytea)
 RETURNS TABLE(robot_id uuid, team_id uuid)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_presenting.serial and c.profile = 'robot' and c.not_after > now()
     and (c.status = 'issued' or (c.status in ('revoking', 'revoked') and c.revocation_reason = 'superseded'))
     and c.pem is not null
     and decode(regexp_replace(c.pem, '-----(BEGIN|END) CERTIFICATE-----|\s', '', 'g'), 'base64') = robot_presenting.certificate;
$function$;
grant execute on function gk_private.robot_presenting(text,bytea) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robots_certificate_replacements(robot_ids uuid[], public_keys text[] DEFAULT NULL::text[])
 RETURNS TABLE(robot_id uuid, certificate_id uuid, requested boolean)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
#variable_conflict use_column
begin
  update gk_public.robots r set certificate_dirty_since = null
   where r.id = any(robot_ids) and r.certificate_dirty_since is not null
     and not exists (select 1 from gk_public.certificates c
                      where c.robot_id = r.id and c.profile = 'robot' and c.status in ('issuing', 'issued'));
  return query
  with wanted as (
    select r.id as robot_id, r.team_id, r.certificate_generation, cur.id as current_id,
           coalesce(cur.public_key_pem, k.public_key) as public_key_pem,
           case when cur.public_key_pem is null and k.public_key is null then cur.csr_pem end as csr_pem,
           least(greatest(cur.not_after - cur.issued_at, interval '1 hour'), interval '10 years') as valid_for
      from unnest(robot_ids, coalesce(public_keys, array_fill(null::text, array[cardinality(robot_ids)]))) as k(robot_id, public_key)
      join gk_public.robots r on r.id = k.robot_id
      cross join lateral gk_private.robot_current_certificate(r.id) cur
     where r.certificate_dirty_since is not null and cur.subject_generation < r.certificate_generation),
  pending as (
    select w.robot_id, x.id
      from wanted w join gk_public.certificates x
        on x.replaces_certificate_id = w.current_id and x.status in ('issuing', 'issued')),
  inserted as (
    insert into gk_public.certificates (owner_team_id, robot_id, profile, public_key_pem, csr_pem, not_after, replaces_certificate_id)
    select w.team_id, w.robot_id, 'robot', w.public_key_pem, w.csr_pem, date_trunc('second', now() + w.valid_for), w.current_id
      from wanted w
     where not exists (select 1 from pending p where p.robot_id = w.robot_id)
       and (w.public_key_pem is not null or w.csr_pem is not null)
    on conflict (replaces_certificate_id) where replaces_certificate_id is not null and status in ('issuing', 'issued')
    do nothing
    returning gk_public.certificates.robot_id, gk_public.certificates.id)
  select i.robot_id, i.id, true from inserted i
  union all
  select p.robot_id, p.id, false from pending p;
end;
$function$;
grant execute on function gk_private.robots_certificate_replacements(uuid[],text[]) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.robots_certificates_dirty(robot_ids uuid[])
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with marked as (
    update gk_public.robots r
       set certificate_generation = r.certificate_generation + 1,
           certificate_dirty_since = coalesce(r.certificate_dirty_since, now())
     where r.id = any(robot_ids)
       and exists (select 1 from gk_public.certificates c
                    where c.robot_id = r.id and c.profile = 'robot' and c.status in ('issuing', 'issued'))
    returning 1)
  select count(*) from marked;
$function$;
comment on function gk_private.robots_certificates_dirty(uuid[]) is 'Marks the robots'' certificates dirty (generation + 1): each gets a replacement at its next certificate read or from the sweep.';

CREATE OR REPLACE FUNCTION gk_private.robots_certificates_due(max_robots integer)
 RETURNS TABLE(robot_id uuid, has_key boolean, pem text)
 LANGUAGE sql
AS $function$
  with due as (
    select r.id from gk_public.robots r
     where r.certificate_dirty_since is not null
       -- A replacement on its way: nothing to request until it is issued.
       and not exists (select 1 from gk_public.certificates x
                        where x.robot_id = r.id and x.replaces_certificate_id is not null and x.status = 'issuing')
     order by r.certificate_dirty_since
     limit max_robots
     for update of r skip locked)
  select d.id, cur.public_key_pem is not null or cur.csr_pem is not null, cur.pem
    from due d left join lateral gk_private.robot_current_certificate(d.id) cur on true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.robots_certificates_supersede(grace interval, max_rows integer)
 RETURNS bigint
 LANGUAGE sql
AS $function$
  with doomed as (
    select old.id from gk_public.certificates n join gk_public.certificates old on old.id = n.replaces_certificate_id
     where n.status = 'issued' and n.issued_at < now() - grace and old.status in ('issuing', 'issued')
     order by n.issued_at
     limit max_rows
     for update of old skip locked),
  revoked as (
    update gk_public.certificates c set status = 'revoking', revocation_reason = 'superseded'
      from doomed where c.id = doomed.id
    returning 1)
  select count(*) from revoked;
$function$;

CREATE OR REPLACE FUNCTION gk_private.rollouts_process(max_rollouts integer)
 RETURNS TABLE(rollout_id uuid, team_id uuid, state text, result text, timed_out integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  create temp table if not exists rollouts_processing (id uuid primary key, team_id uuid, max_failed int, timed_out int) on commit drop;
  truncate rollouts_processing;
  insert into rollouts_processing
  select r.id, r.team_id, r.max_failed_robots, 0 from gk_public.rollouts r
   where r.state = 'launched'
   order by r.launched_at, r.id
   limit max_rollouts
     for no key update skip locked;

  -- Robots that did not finish within the deadline.
  with late as (
    update gk_public.rollout_robots rr
       set state = 'failed', result = format('no report within %s of the launch', r.robot_deadline), updated_at = now()
      from rollouts_processing p join gk_public.rollouts r on r.id = p.id
     where rr.rollout_id = p.id and rr.team_id = p.team_id and rr.state in ('pending', 'scheduled', 'accepted')
       and r.launched_at + r.robot_deadline < now()
    returning rr.rollout_id)
  update rollouts_processing p set timed_out = c.n
    from (select l.rollout_id, count(*)::int as n from late l group by 1) c where c.rollout_id = p.id;

  return query
  with counts as (
    select p.id, p.team_id, p.max_failed, p.timed_out,
           count(rr.robot_id) filter (where rr.state in ('pending', 'scheduled', 'accepted')) as unfinished,
           count(rr.robot_id) filter (where rr.state = 'completed') as completed,
           count(rr.robot_id) filter (where rr.state = 'failed') as failed,
           count(rr.robot_id) filter (where rr.state = 'skipped') as skipped,
           count(rr.robot_id) filter (where rr.state = 'cancelled') as cancelled
      from rollouts_processing p
      left join gk_public.rollout_robots rr on rr.rollout_id = p.id and rr.team_id = p.team_id
     group by p.id, p.team_id, p.max_failed, p.timed_out
  ), verdict as (
    select c.*, case when c.max_failed is not null and c.failed > c.max_failed then 'failed'
                     when c.unfinished = 0 then 'completed' end as ending
      from counts c
  ), withdrawn as (
    update gk_public.rollout_robots rr
       set state = 'cancelled', result = format('rollout failed: %s robots failed (threshold %s)', v.failed, v.max_failed),
           updated_at = now()
      from verdict v
     where v.ending = 'failed' and rr.rollout_id = v.id and rr.team_id = v.team_id
       and rr.state in ('pending', 'scheduled', 'accepted')
    returning rr.rollout_id
  ), ended as (
    update gk_public.rollouts r
       set state = v.ending, ended_at = now(),
           result = case when v.ending = 'failed'
                         then format('%s robots failed, more than the threshold of %s; %s completed, %s unfinished robots withdrawn',
                                     v.failed, v.max_failed, v.completed, v.unfinished)
                         else format('%s completed, %s failed, %s skipped, %s cancelled', v.completed, v.failed, v.skipped, v.cancelled) end
      from verdict v
     where r.id = v.id and v.ending is not null
    returning r.id, r.team_id, r.state, r.result
  )
  select e.id, e.team_id, e.state, e.result, v.timed_out
    from ended e join verdict v on v.id = e.id;
end;
$function$;
comment on function gk_private.rollouts_process(integer) is 'Ends launched rollouts (at most max_rollouts, each locked): deadline, failure threshold, completion.';

CREATE OR REPLACE FUNCTION gk_private.rollouts_record_event(p_robot_id uuid, p_event_id uuid, p_ecu_serial text, p_type text, p_description text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v_ecu gk_public.ecus;
  v_rr gk_public.rollout_robots;
  v_image uuid;
  v_pending int;
begin
  if p_type is null or not gk_private.rollouts_valid_ecu_status(p_type) then
    raise exception 'unknown event type % (known: download_started, download_completed, download_failed, installation_started, installation_completed, installation_failed)',
      p_type using errcode = '22023';
  end if;
  select * into v_ecu from gk_public.ecus e where e.robot_id = p_robot_id and e.serial = p_ecu_serial;
  if not found then
    raise exception 'robot % has no ECU %', p_robot_id, p_ecu_serial using errcode = 'P0002';
  end if;
  -- The robot's unfinished rollout row (at most one), locked before anything else of it.
  select rr.* into v_rr from gk_public.rollout_robots rr
   where rr.robot_id = p_robot_id and rr.state in ('scheduled', 'accepted') for update;
  -- The image the rollout maps this ECU's hardware id to (director_targets lists the same).
  if v_rr.rollout_id is not null then
    select ri.image_id into v_image from gk_public.rollout_images ri
     where ri.rollout_id = v_rr.rollout_id and ri.team_id = v_rr.team_id and ri.hardware_id = v_ecu.hardware_id;
  end if;

  insert into gk_public.rollout_events (team_id, robot_id, event_id, ecu_id, rollout_id, type, description)
  values (v_ecu.team_id, p_robot_id, p_event_id, v_ecu.id, case when v_image is not null then v_rr.rollout_id end,
          p_type, left(p_description, 2000))
  on conflict (robot_id, event_id) do nothing;
  if not found then
    return 'duplicate';
  end if;

  update gk_public.ecus e
     set status = p_type, status_at = now(),
         installed_image_id = case when p_type = 'installation_completed' and v_image is not null then v_image else e.installed_image_id end
   where e.id = v_ecu.id;
  if v_image is null then
    return 'recorded';
  end if;

  -- The ECU's row of this rollout appears at its first event (scheduling creates none).
  insert into gk_public.rollout_robot_ecus as x (team_id, rollout_id, robot_id, ecu_id, image_id, status)
  values (v_rr.team_id, v_rr.rollout_id, p_robot_id, v_ecu.id, v_image, p_type)
  on conflict (rollout_id, ecu_id) do update set status = excluded.status, updated_at = now();
  if p_type in ('download_failed', 'installation_failed') then
    update gk_public.rollout_robots rr
       set state = 'failed', updated_at = now(),
           result = format('ECU %s: %s%s', p_ecu_serial, p_type, coalesce(': ' || left(p_description, 500), ''))
     where rr.rollout_id = v_rr.rollout_id and rr.robot_id = p_robot_id;
    return 'recorded';
  end if;
  -- ECUs the rollout maps that do not run its image yet (installed_image_id was set above).
  select count(*) into v_pending from gk_public.ecus e
    join gk_public.rollout_images ri on ri.rollout_id = v_rr.rollout_id and ri.team_id = v_rr.team_id and ri.hardware_id = e.hardware_id
   where e.robot_id = p_robot_id and e.installed_image_id is distinct from ri.image_id;
  update gk_public.rollout_robots rr
     set state = case when v_pending = 0 then 'completed' else 'accepted' end,
         result = case when v_pending = 0 then 'installed on every ECU' end,
         updated_at = now()
   where rr.rollout_id = v_rr.rollout_id and rr.robot_id = p_robot_id
     and (rr.state <> 'accepted' or v_pending = 0);
  return 'recorded';
end;
$function$;
comment on function gk_private.rollouts_record_event(uuid,uuid,text,text,text) is 'Records one ECU event of a robot (idempotent by event id) and moves its rollout row; returns recorded or duplicate.';
grant execute on function gk_private.rollouts_record_event(uuid,uuid,text,text,text) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.rollouts_schedule_processing()
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  select gk_private.enqueue('rollouts__process', '{}'::jsonb, job_key := 'rollouts__process',
                            run_at := now() + interval '1 second', queue_name := 'rollouts__process',
                            job_key_mode := 'preserve_run_at')
$function$;

CREATE OR REPLACE FUNCTION gk_private.rollouts_team_lock(p_team_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$ select pg_advisory_xact_lock(hashtextextended('rollouts:' || p_team_id::text, 0)) $function$;

CREATE OR REPLACE FUNCTION gk_private.rollouts_valid_ecu_status(s text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select s in ('download_started', 'download_completed', 'download_failed',
                   'installation_started', 'installation_completed', 'installation_failed') $function$;

CREATE OR REPLACE FUNCTION gk_private.saga_enqueue(id uuid, name text)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
  select gk_private.enqueue(name, jsonb_build_object('saga_id', id), job_key := 'saga:' || id);
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_event(saga gk_public.sagas, step integer, event text, error text DEFAULT NULL::text)
 RETURNS gk_public.sagas
 LANGUAGE sql
AS $function$
  insert into gk_public.saga_events (saga_id, step, step_name, event, error)
  values (saga.id, step, saga.steps[step + 1], event, error);
  select saga;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_start(name text, steps text[], params jsonb)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v_id uuid;
begin
  insert into gk_public.sagas (name, steps, params) values (name, steps, params) returning id into v_id;
  perform gk_private.saga_enqueue(v_id, name);
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_start_many(name text, steps text[], params jsonb[], batch_size integer)
 RETURNS TABLE(id uuid)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  v_ids uuid[] := array(select gen_random_uuid() from generate_series(1, cardinality(params)));
begin
  if batch_size is null or batch_size not between 1 and 100 then
    raise exception 'batch_size must be 1 to 100, not %', batch_size using errcode = '22023';
  end if;
  insert into gk_public.sagas (id, name, steps, params)
  select x.id, saga_start_many.name, saga_start_many.steps, x.p from unnest(v_ids, params) x(id, p);
  perform gk_private.enqueue_many(saga_start_many.name, array(
    select jsonb_build_object('saga_ids', jsonb_agg(u.id order by u.o))
      from unnest(v_ids) with ordinality u(id, o)
     group by (u.o - 1) / batch_size));
  return query select u.id from unnest(v_ids) with ordinality u(id, o) order by u.o;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_step_done(id uuid, step integer, output jsonb)
 RETURNS gk_public.sagas
 LANGUAGE sql
AS $function$
  select * from gk_private.saga_steps_done(array[id], array[step], array[output]);
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_step_failed(id uuid, step integer, error text)
 RETURNS gk_public.sagas
 LANGUAGE sql
AS $function$
  select * from gk_private.saga_steps_failed(array[id], array[step], array[error]);
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_step_undone(id uuid, step integer)
 RETURNS gk_public.sagas
 LANGUAGE sql
AS $function$
  with moved as (
    update gk_public.sagas s
       set step = greatest(s.step - 1, 0),
           state = case when s.step = 0 then 'failed' else 'unwinding' end,
           finished_at = case when s.step = 0 then now() end,
           undo_error = null, undo_attempts = 0, updated_at = now()
     where s.id = saga_step_undone.id and s.state = 'unwinding' and s.step = saga_step_undone.step
    returning s.*)
  select gk_private.saga_event(m, saga_step_undone.step, 'undone') from moved m;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_steps_advanced(ids uuid[], steps integer[], counts integer[], outputs jsonb[], done_events boolean)
 RETURNS SETOF gk_public.sagas
 LANGUAGE sql
AS $function$
  with moved as (
    update gk_public.sagas s
       set step = s.step + x.n,
           outputs = s.outputs || x.outputs,
           state = case when s.step + x.n = cardinality(s.steps) then 'succeeded' else 'running' end,
           finished_at = case when s.step + x.n = cardinality(s.steps) then now() end,
           updated_at = now()
      from unnest(saga_steps_advanced.ids, saga_steps_advanced.steps, saga_steps_advanced.counts, saga_steps_advanced.outputs)
           x(id, step, n, outputs)
     where s.id = x.id and s.state = 'running' and s.step = x.step and x.n between 1 and cardinality(s.steps) - s.step
    returning row(s.*)::gk_public.sagas as saga, x.step, x.n),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event)
    select (m.saga).id, k, (m.saga).steps[k + 1], 'done'
      from moved m cross join lateral generate_series(m.step, m.step + m.n - 1) k
     where done_events
     order by (m.saga).id, k)
  select (m.saga).* from moved m;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_steps_done(ids uuid[], steps integer[], outputs jsonb[])
 RETURNS SETOF gk_public.sagas
 LANGUAGE sql
AS $function$
  with moved as (
    update gk_public.sagas s
       set step = s.step + 1,
           outputs = s.outputs || jsonb_build_object(s.steps[s.step + 1], x.output),
           state = case when s.step + 1 = cardinality(s.steps) then 'succeeded' else 'running' end,
           finished_at = case when s.step + 1 = cardinality(s.steps) then now() end,
           updated_at = now()
      from unnest(saga_steps_done.ids, saga_steps_done.steps, saga_steps_done.outputs) x(id, step, output)
     where s.id = x.id and s.state = 'running' and s.step = x.step
    returning row(s.*)::gk_public.sagas as saga, x.step),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event)
    select (m.saga).id, m.step, (m.saga).steps[m.step + 1], 'done' from moved m)
  select (m.saga).* from moved m;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_steps_failed(ids uuid[], steps integer[], errors text[])
 RETURNS SETOF gk_public.sagas
 LANGUAGE sql
AS $function$
  with moved as (
    update gk_public.sagas s
       set state = 'unwinding', failed_step = s.steps[s.step + 1], error = left(x.error, 2000), updated_at = now()
      from unnest(saga_steps_failed.ids, saga_steps_failed.steps, saga_steps_failed.errors) x(id, step, error)
     where s.id = x.id and s.state = 'running' and s.step = x.step
    returning row(s.*)::gk_public.sagas as saga, x.step, left(x.error, 2000) as error),
  events as (
    insert into gk_public.saga_events (saga_id, step, step_name, event, error)
    select (m.saga).id, m.step, (m.saga).steps[m.step + 1], 'failed', m.error from moved m)
  select (m.saga).* from moved m;
$function$;

CREATE OR REPLACE FUNCTION gk_private.saga_undo_failed(id uuid, step integer, error text)
 RETURNS gk_public.sagas
 LANGUAGE sql
AS $function$
  with moved as (
    update gk_public.sagas s
       set undo_error = left(saga_undo_failed.error, 2000), undo_attempts = s.undo_attempts + 1, updated_at = now()
     where s.id = saga_undo_failed.id and s.state = 'unwinding' and s.step = saga_undo_failed.step
    returning s.*)
  select gk_private.saga_event(m, saga_undo_failed.step, 'undo_failed', left(saga_undo_failed.error, 2000)) from moved m;
$function$;

CREATE OR REPLACE FUNCTION gk_private.task_backlog(task text)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select exists (
    select 1 from graphile_worker.jobs j
     where j.task_identifier = task_backlog.task
       and j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now());
$function$;

CREATE OR REPLACE FUNCTION gk_private.telemetry_partition_name(day date)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE STRICT
AS $function$
  select 'ecu_telemetry_p' || to_char(day, 'YYYYMMDD');
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__drop_parked_keys()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  delete from gk_private.certificate_private_keys k
   where k.certificate_id in (
           select n.id from new_rows n where n.status in ('revoking', 'revoked', 'expired', 'failed'));
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__enqueue_issuance()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  perform gk_private.enqueue_id_batches('certificates__issue',
    array(select id from new_rows where status = 'issuing'), 50);
  perform gk_private.enqueue_id_batches('certificates__revoke',
    array(select id from new_rows where status = 'revoking'));
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__enqueue_revocations()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__lifecycle()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__robot_regenerated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  replaced uuid[];
begin
  -- Statement triggers fire for zero rows too (also for the UPDATE below): only act on rows.
  update gk_public.robots r set certificate_dirty_since = null
    from new_rows n join old_rows o on o.id = n.id
   where n.robot_id = r.id and n.status = 'issued' and o.status = 'issuing'
     and n.subject_generation = r.certificate_generation and r.certificate_dirty_since is not null;
  -- Downloaded: the certificates it replaces (the whole chain) are superseded now.
  replaced := array(
    with recursive chain(id) as (
      select n.replaces_certificate_id from new_rows n join old_rows o on o.id = n.id
       where n.downloaded_at is not null and o.downloaded_at is null and n.replaces_certificate_id is not null
      union
      select c.replaces_certificate_id from gk_public.certificates c join chain on c.id = chain.id
       where c.replaces_certificate_id is not null)
    select id from chain);
  if cardinality(replaced) > 0 then
    update gk_public.certificates c set status = 'revoking', revocation_reason = 'superseded'
     where c.id = any(replaced) and c.status in ('issuing', 'issued');
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__robot_subject()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if new.profile = 'robot' and new.robot_id is not null and new.subject_generation is null then
    select gk_private.robot_certificate_subject(r.id), r.certificate_generation
      into new.subject, new.subject_generation
      from gk_public.robots r where r.id = new.robot_id;
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_certificates__supersede_worker_certificates()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if not exists (select 1 from new_rows n where n.worker_id is not null) then
    return null;
  end if;
  update gk_public.certificates c
     set status = 'revoking', revocation_reason = 'superseded'
   where c.worker_id in (select n.worker_id from new_rows n where n.worker_id is not null)
     and c.status in ('issuing', 'issued')
     and c.id not in (select n.id from new_rows n);
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_ecu_version_reports__counter_increases()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if new.report_counter <= old.report_counter or new.reported_at < old.reported_at then
    raise exception 'ECU %: report counter % (time %) does not follow the accepted % (time %)',
      old.ecu_id, new.report_counter, new.reported_at, old.report_counter, old.reported_at using errcode = '55000';
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_ecus__leave_team_images()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  new.installed_image_id := null;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_ecus__mark_director_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  if tg_op = 'INSERT' then
    perform gk_private.director_mark_dirty(array(select distinct n.robot_id from new_rows n));
  elsif tg_op = 'DELETE' then
    perform gk_private.director_mark_dirty(array(select distinct o.robot_id from old_rows o));
  else
    perform gk_private.director_mark_dirty(array(
      select distinct n.robot_id
        from new_rows n join old_rows o on o.id = n.id
       where (n.serial, n.hardware_id) is distinct from (o.serial, o.hardware_id)
          or (n.installed_image_id is distinct from o.installed_image_id
              and not exists (select 1 from gk_public.rollout_robots rr
                                join gk_public.rollout_images ri on ri.rollout_id = rr.rollout_id and ri.team_id = rr.team_id
                               where rr.robot_id = n.robot_id and rr.state in ('scheduled', 'accepted')
                                 and ri.hardware_id = n.hardware_id and ri.image_id = n.installed_image_id))));
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_export_nodes__expunge_when_worker_gone()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
  if new.worker_id is null and new.state = 'in_service' then
    new.state := 'expunged';
    new.expunged_at := now();
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_exports__pending_when_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if tg_op = 'UPDATE' then
    insert into gk_private.export_pending (resource_type, resource_id) values (new.resource_type, new.resource_id);
  else
    insert into gk_private.export_pending (resource_type, resource_id)
    select o.resource_type, o.resource_id from old_rows o where o.state <> 'deleted';
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_images__exports_pending()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if tg_op = 'INSERT' then
    insert into gk_private.export_pending (resource_type, resource_id) select 'image', n.id from new_rows n;
  else
    insert into gk_private.export_pending (resource_type, resource_id) select 'image', o.id from old_rows o;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_provisioning_credentials__expire_certificates()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_provisioning_credentials__revoke_certificates()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_purge_items__enqueue()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if tg_op = 'INSERT' then
    perform gk_private.purge_items_enqueue(array(select n.id from new_rows n));
  else
    perform gk_private.purge_items_enqueue(array(
      select n.id from new_rows n join old_rows o on o.id = n.id where n.retry_requested_at is distinct from o.retry_requested_at));
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_robot_attributes__robot_certificates_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  ids uuid[];
begin
  if tg_table_name = 'robot_groups' then
    ids := array(select m.robot_id from new_rows n join old_rows o on o.id = n.id
                   join gk_public.robot_group_members m on m.group_id = n.id where n.name is distinct from o.name);
  elsif tg_op = 'INSERT' then
    ids := array(select distinct n.robot_id from new_rows n);
  elsif tg_op = 'DELETE' then
    ids := array(select distinct o.robot_id from old_rows o);
  elsif tg_table_name = 'ecus' then
    ids := array(select distinct unnest(array[n.robot_id, o.robot_id]) from new_rows n join old_rows o on o.id = n.id
                  where n.hardware_id is distinct from o.hardware_id or n.robot_id is distinct from o.robot_id);
  end if;
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_robots__leave_team()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  if not exists (select 1 from gk_public.teams t where t.id = new.team_id) then
    raise exception 'team % not found', new.team_id using errcode = 'P0002';
  end if;
  -- Both teams' launches wait for the move (and the move for them), taken in one order.
  perform gk_private.rollouts_team_lock(x.id) from (values (old.team_id), (new.team_id)) x (id) order by x.id;
  delete from gk_public.rollout_selected_robots s where s.robot_id = old.id and s.team_id = old.team_id;
  -- The lock order (rollout rows before director rows): the cascade locks the director row
  -- before the statement's end, where the unfinished rows are ended.
  perform 1 from gk_public.rollout_robots rr
   where rr.robot_id = old.id and rr.state in ('pending', 'scheduled', 'accepted') for update;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_robots__moved_team()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  moved uuid[];
begin
  moved := array(select n.id from new_rows n join old_rows o on o.id = n.id where n.team_id <> o.team_id order by n.id);
  if cardinality(moved) = 0 then
    return null;
  end if;
  with ending as (
    select rr.rollout_id, rr.robot_id, t.name as team_name
      from unnest(moved) u (id)
      join gk_public.rollout_robots rr on rr.robot_id = u.id and rr.state in ('pending', 'scheduled', 'accepted')
      join gk_public.robots r on r.id = u.id
      join gk_public.teams t on t.id = r.team_id
     where rr.team_id <> r.team_id
     order by rr.robot_id
       for update of rr
  )
  update gk_public.rollout_robots rr
     set state = case when rr.state = 'pending' then 'skipped' else 'cancelled' end,
         result = format('robot moved to team %s', e.team_name), updated_at = now()
    from ending e
   where rr.rollout_id = e.rollout_id and rr.robot_id = e.robot_id;
  delete from gk_public.robot_group_members m
   using unnest(moved) u (id) join gk_public.robots r on r.id = u.id
   where m.robot_id = u.id and m.team_id <> r.team_id;
  delete from gk_public.robot_director_documents x using unnest(moved) u (id) where x.robot_id = u.id;
  perform gk_private.director_mark_dirty(array(
    select d.robot_id from unnest(moved) u (id) join gk_public.robot_directors d on d.robot_id = u.id order by d.robot_id));
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_robots__robot_certificates_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  ids uuid[];
begin
  ids := array(select n.id from new_rows n join old_rows o on o.id = n.id
                where (n.name, n.team_id) is distinct from (o.name, o.team_id));
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_rollout_images__check_hardware()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  if not exists (select 1 from gk_public.images i where i.id = new.image_id and new.hardware_id = any(i.hardware_ids)) then
    raise exception 'image % is not built for hardware id %', new.image_id, new.hardware_id using errcode = '22023';
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_rollout_robots__mark_director_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  if tg_op = 'INSERT' then
    if exists (select 1 from new_rows n where n.state <> 'pending') then
      perform gk_private.director_mark_dirty(array(select distinct n.robot_id from new_rows n where n.state <> 'pending'));
    end if;
    if exists (select 1 from new_rows n where n.state = 'pending') then
      perform gk_private.enqueue('rollouts__regenerate', '{}'::jsonb, job_key := 'rollouts__regenerate',
                                 run_at := now() + interval '1 second', queue_name := 'rollouts__regenerate',
                                 job_key_mode := 'preserve_run_at');
    end if;
  else
    -- Nothing marks and nothing ends unless a row leaves pending/scheduled/accepted: the store of
    -- a read's documents (pending → scheduled), an accepted event. One scan of new_rows, then out.
    if not exists (select 1 from new_rows n where n.state not in ('pending', 'scheduled', 'accepted')) then
      return null;
    end if;
    perform gk_private.director_mark_dirty(array(
      select distinct n.robot_id
        from new_rows n join old_rows o on o.rollout_id = n.rollout_id and o.robot_id = n.robot_id
       where (o.state in ('scheduled', 'accepted', 'completed') and n.state in ('failed', 'cancelled', 'skipped')
              and not exists (select 1 from gk_public.rollout_robots p where p.robot_id = n.robot_id and p.state = 'pending'))
          or (o.state = 'pending' and n.state in ('failed', 'cancelled'))));
    if exists (select 1 from new_rows n join old_rows o on o.rollout_id = n.rollout_id and o.robot_id = n.robot_id
                where o.state in ('pending', 'scheduled', 'accepted') and n.state not in ('pending', 'scheduled', 'accepted')) then
      perform gk_private.rollouts_schedule_processing();
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_rollouts__immutable_once_launched()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  v_rollout_id uuid := case when tg_op = 'DELETE' then old.rollout_id else new.rollout_id end;
begin
  -- A robot that leaves (deleted: the foreign key's cascade; moved to another team:
  -- tg_robots__leave_team) leaves the selection too; only a direct edit is refused.
  if tg_op = 'DELETE' and tg_table_name = 'rollout_selected_robots' and pg_trigger_depth() > 1 then
    return old;
  end if;
  if exists (select 1 from gk_public.rollouts r where r.id = v_rollout_id and r.state <> 'prepared') then
    raise exception 'rollout % is no longer prepared: its images and robots are fixed', v_rollout_id using errcode = '55000';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_sagas__enqueue_retry()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  perform gk_private.saga_enqueue(new.id, new.name);
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_teams__purge_blobs()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  -- Due only after a lease, like a certificate: its first job is enqueued right now, so the bin
  -- reconciler must not re-enqueue (nor the bin call overdue) a purge that is simply running.
  insert into gk_public.purge_items (kind, ref, team_id, next_attempt_at)
  select 'blob_prefix', gk_public.team_blob_prefix(o.id), o.id, now() + gk_private.bin_lease() from old_rows o
  on conflict (kind, ref) where completed_at is null do nothing;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_teams__robot_certificates_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
declare
  ids uuid[];
begin
  -- Statement triggers fire for zero rows too: nothing renamed, nothing to do (and no recursion).
  ids := array(select r.id from new_rows n join old_rows o on o.id = n.id join gk_public.robots r on r.team_id = n.id
                where n.name is distinct from o.name);
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_tuf_repositories__check_lifetimes()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  problem text := gk_private.tuf_lifetimes_problem(new.targets_lifetime, new.bins_lifetime, new.snapshot_lifetime,
                                                   new.timestamp_lifetime, new.resign_window, new.publish_delay);
begin
  if problem is not null then
    raise exception 'TUF repository lifetimes: %', problem using errcode = '22023';
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_tuf_targets__check_target()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  problem text;
begin
  if not gk_private.tuf_path_ok(new.path) then
    raise exception 'target path % %', left(to_json(new.path)::text, 200), gk_private.tuf_path_problem(new.path) using errcode = '22023';
  end if;
  if new.length < 0 or new.length > 9007199254740991 then
    raise exception 'target %: length % is not between 0 and 2^53 - 1', left(to_json(new.path)::text, 200), new.length
      using errcode = '22023';
  end if;
  if not gk_private.tuf_hashes_ok(new.hashes) then
    raise exception 'target %: hashes: %', left(to_json(new.path)::text, 200), gk_private.tuf_hashes_problem(new.hashes)
      using errcode = '22023';
  end if;
  if new.custom is not null then
    problem := gk_private.tuf_custom_problem(new.custom);
    if problem is not null then
      raise exception 'target %: custom %', left(to_json(new.path)::text, 200), problem using errcode = '22023';
    end if;
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_tuf_targets__mark_bins_dirty()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  teams uuid[];
  hashes bigint[];
begin
  if tg_op = 'INSERT' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes from new_rows;
  elsif tg_op = 'DELETE' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes from old_rows;
  else
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes
      from (select team_id, path_hash32 from new_rows union select team_id, path_hash32 from old_rows) c;
  end if;
  if teams is not null then
    perform gk_private.tuf_mark_bins_dirty(teams, hashes);
  end if;
  if tg_op <> 'DELETE' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes
      from new_rows where path ~ '[\uE000-\uFFFF\U00010000-\U0010FFFF]';
    if teams is not null then
      perform gk_private.tuf_refuse_bin_order_conflicts(teams, hashes);
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_volumes__activate_collector()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if tg_op = 'UPDATE' then
    perform gk_private.volumes_activate_collector();
  elsif coalesce(current_setting('groundskeeper.volumes_collecting', true), '') <> 'on'
    and exists (select 1 from old_rows o where o.parent_id is not null) then
    perform gk_private.volumes_activate_collector();
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_volumes__enqueue_create()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  perform gk_private.enqueue_many('volumes__create', array(
    select jsonb_build_object('ids', to_jsonb(b.ids)) from (
      select array_agg(n.id order by n.id) as ids
        from (select id, worker_id, (row_number() over (partition by worker_id order by id) - 1) / 100 as g
                from new_rows where state = 'creating') n
       group by n.worker_id, n.g) b));
  -- Adopted (unknown) handles arrive as destroying.
  if exists (select 1 from new_rows where state = 'destroying') then
    perform gk_private.volumes_activate_collector();
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tg_volumes__retry_due()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
begin
  if new.retry_requested_at is distinct from old.retry_requested_at and new.state = 'destroying' then
    new.next_attempt_at := now();
    perform gk_private.volumes_activate_collector();
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_blob_key(team_id uuid, file text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select 'teams/' || team_id || '/tuf/' || file $function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_canonical(v jsonb)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE STRICT SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  return case jsonb_typeof(v)
    when 'object' then '{' || coalesce((
        select string_agg(gk_private.tuf_canonical_string(e.key) || ':' || gk_private.tuf_canonical(e.value), ',' order by e.key collate "C")
          from jsonb_each(v) e), '') || '}'
    when 'array' then '[' || coalesce((
        select string_agg(gk_private.tuf_canonical(a.value), ',' order by a.n)
          from jsonb_array_elements(v) with ordinality a (value, n)), '') || ']'
    when 'string' then gk_private.tuf_canonical_string(v #>> '{}')
    else v::text
  end;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_canonical_string(s text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select '"' || replace(replace(s, '\', '\\'), '"', '\"') || '"' $function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_custom_problem(custom jsonb)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case
    when jsonb_typeof(custom) <> 'object' then 'must be a JSON object'
    when octet_length(custom::text) > 16384 then 'is larger than 16 KiB'
    else (
      with recursive walk (v, depth, at) as (
        select custom, 1, '$'::text
        union all
        select c.value, w.depth + 1, w.at || c.step
          from walk w
          cross join lateral (
            select e.value, '.' || e.key as step
              from jsonb_each(case when jsonb_typeof(w.v) = 'object' then w.v end) e
            union all
            select a.value, '[' || (a.n - 1) || ']'
              from jsonb_array_elements(case when jsonb_typeof(w.v) = 'array' then w.v end) with ordinality a (value, n)
          ) c
         where w.depth <= 16
      )
      select format('at %s %s', p.at, p.problem)
        from (
          select w.at, case
            when w.depth > 16 then 'is nested deeper than 16 levels'
            when jsonb_typeof(w.v) = 'number'
             and (w.v::text !~ '^-?(0|[1-9][0-9]*)$' or abs(w.v::text::numeric) > 9007199254740991)
              then format('number %s is not an integer between -(2^53 - 1) and 2^53 - 1 (JSON cannot carry it exactly)', w.v::text)
            when jsonb_typeof(w.v) = 'string' and (w.v #>> '{}') ~ '[[:cntrl:]]' then 'a string contains a control character'
            when jsonb_typeof(w.v) = 'object' and exists (select 1 from jsonb_object_keys(w.v) k where k ~ '[[:cntrl:]]')
              then 'a key contains a control character'
            when jsonb_typeof(w.v) = 'object' and gk_private.tuf_key_order_conflict(array(select jsonb_object_keys(w.v))) is not null
              then format('keys %s sort differently in UTF-16 (tuf-js) and by code point (python-tuf, go-tuf)',
                          array_to_string(gk_private.tuf_key_order_conflict(array(select jsonb_object_keys(w.v))), ' and '))
          end as problem
            from walk w
        ) p
       where p.problem is not null
       order by p.at
       limit 1)
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_hashes_ok(hashes jsonb)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select case when jsonb_typeof(hashes) <> 'object' or hashes = '{}'::jsonb then false
    else hashes - 'sha256' - 'sha384' - 'sha512' = '{}'::jsonb
     and (not hashes ? 'sha256' or (jsonb_typeof(hashes -> 'sha256') = 'string' and length(hashes ->> 'sha256') = 64 and (hashes ->> 'sha256') !~ '[^0-9a-f]'))
     and (not hashes ? 'sha384' or (jsonb_typeof(hashes -> 'sha384') = 'string' and length(hashes ->> 'sha384') = 96 and (hashes ->> 'sha384') !~ '[^0-9a-f]'))
     and (not hashes ? 'sha512' or (jsonb_typeof(hashes -> 'sha512') = 'string' and length(hashes ->> 'sha512') = 128 and (hashes ->> 'sha512') !~ '[^0-9a-f]'))
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_hashes_problem(hashes jsonb)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select case
    when jsonb_typeof(hashes) <> 'object' or hashes = '{}'::jsonb then 'must be an object {algorithm: hex digest} with at least one entry'
    else (
      select case
        when h.key not in ('sha256', 'sha384', 'sha512') then format('%s is not a known algorithm (known: sha256, sha384, sha512)', h.key)
        when jsonb_typeof(h.value) <> 'string' or (h.value #>> '{}') !~ '^[0-9a-f]*$' then format('%s must be lower-case hex', h.key)
        else format('%s must be %s hex digits, got %s', h.key,
                    case h.key when 'sha256' then 64 when 'sha384' then 96 else 128 end, length(h.value #>> '{}'))
      end
        from jsonb_each(hashes) h
       where h.key not in ('sha256', 'sha384', 'sha512')
          or jsonb_typeof(h.value) <> 'string'
          or length(h.value #>> '{}') <> case h.key when 'sha256' then 64 when 'sha384' then 96 else 128 end
          or (h.value #>> '{}') !~ '^[0-9a-f]*$'
       order by h.key
       limit 1)
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_key_order_conflict(keys text[])
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case
    when exists (select 1 from unnest(keys) k where k ~ '[\uE000-\uFFFF]')
     and exists (select 1 from unnest(keys) k where k ~ '[\U00010000-\U0010FFFF]')
    then (select array[a.k, b.k]
            from (select k, row_number() over (order by k collate "C") as i from unnest(keys) k) a
            join (select k, row_number() over (order by gk_private.tuf_utf16_key(k)) as i from unnest(keys) k) b on a.i = b.i
           where a.k <> b.k
           order by a.i
           limit 1)
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_lifetimes_problem(targets interval, bins interval, snapshot interval, timestamp_ interval, resign_window interval, publish_delay interval)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case
    when greatest(targets, bins, snapshot, timestamp_) > interval '10 years'
      then 'lifetimes must be at most 10 years'
    when publish_delay < interval '0' or publish_delay > interval '1 hour'
      then 'publish_delay must be between 0 and 1 hour'
    when resign_window < gk_private.tuf_resign_interval() * 2 + publish_delay
      then format('resign_window %s is too short: the resign sweep runs every %s, so it must be at least %s (two sweeps plus publish_delay)',
                  resign_window, gk_private.tuf_resign_interval(), gk_private.tuf_resign_interval() * 2 + publish_delay)
    when least(targets, bins, snapshot, timestamp_) < resign_window + gk_private.tuf_resign_interval() * 2
      then format('every lifetime must be at least resign_window + %s (%s), the shortest is %s',
                  gk_private.tuf_resign_interval() * 2, resign_window + gk_private.tuf_resign_interval() * 2,
                  least(targets, bins, snapshot, timestamp_))
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_mark_bins_dirty(team_ids uuid[], hashes bigint[])
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform 1
     from gk_public.tuf_roles ro
     join (select distinct c.team_id, (c.h >> (32 - p.bit_length))::int as bin
             from unnest(team_ids, hashes) as c (team_id, h)
             join gk_public.tuf_repositories p on p.team_id = c.team_id) c
       on c.team_id = ro.team_id and c.bin = ro.bin
    order by ro.team_id, ro.role
      for update of ro;

  update gk_public.tuf_roles ro
     set dirty = true, dirty_since = coalesce(ro.dirty_since, now()), dirty_generation = ro.dirty_generation + 1
    from (select distinct c.team_id, (c.h >> (32 - p.bit_length))::int as bin
            from unnest(team_ids, hashes) as c (team_id, h)
            join gk_public.tuf_repositories p on p.team_id = c.team_id) c
   where c.team_id = ro.team_id and c.bin = ro.bin;

  perform gk_private.tuf_schedule_publish(array(select distinct u from unnest(team_ids) as u));
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_path_hash32(path text)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select ('x' || substr(encode(sha256(convert_to(path, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_path_ok(path text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$ select octet_length(path) between 1 and 1024 and path !~ '[\\?#%[:cntrl:]]|^/|/$|//|(^|/)\.\.?(/|$)|^[A-Za-z]:' $function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_path_problem(path text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select case
    when path = '' then 'is empty'
    when octet_length(path) > 1024 then 'is longer than 1024 bytes'
    when path ~ '[[:cntrl:]]' then 'contains a control character'
    when path ~ '[\\]' then 'contains a backslash'
    when path ~ '[?#%]' then 'contains ?, # or % (they change the download URL)'
    when path ~ '^/' then 'starts with /'
    when path ~ '/$' then 'ends with /'
    when path ~ '//' then 'has an empty segment (//)'
    when path ~ '(^|/)\.\.?(/|$)' then 'has a "." or ".." segment'
    when path ~ '^[A-Za-z]:' then 'starts with a drive letter'
  end
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_publish_failed(team_id uuid, error text)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update gk_public.tuf_repositories p
     set last_publish_error = left(coalesce(nullif(error, ''), 'unknown error'), 2000),
         publish_failing_since = coalesce(p.publish_failing_since, now()),
         publish_failures = p.publish_failures + 1
   where p.team_id = tuf_publish_failed.team_id
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_publish_succeeded(team_id uuid)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update gk_public.tuf_repositories p
     set last_publish_error = null, publish_failing_since = null, publish_failures = 0, last_published_at = now()
   where p.team_id = tuf_publish_succeeded.team_id
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_refuse_bin_order_conflicts(team_ids uuid[], hashes bigint[])
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  r record;
begin
  for r in
    select c.team_id, c.bin, gk_private.tuf_key_order_conflict(array(
             select t.path from gk_public.tuf_targets t
              where t.team_id = c.team_id
                and t.path_hash32 >= (c.bin::bigint << (32 - c.bit_length))
                and t.path_hash32 < ((c.bin::bigint + 1) << (32 - c.bit_length))
                and t.path ~ '[\uE000-\uFFFF\U00010000-\U0010FFFF]')) as pair
      from (select distinct u.team_id, (u.h >> (32 - p.bit_length))::int as bin, p.bit_length
              from unnest(team_ids, hashes) as u (team_id, h)
              join gk_public.tuf_repositories p on p.team_id = u.team_id) c
  loop
    if r.pair is not null then
      raise exception 'target paths % and % sort differently in UTF-16 (tuf-js) and by code point (python-tuf, go-tuf), and they share a bin: rename one',
        left(to_json(r.pair[1])::text, 200), left(to_json(r.pair[2])::text, 200)
        using errcode = '22023';
    end if;
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_resign_interval()
 RETURNS interval
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$ select interval '5 minutes' $function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_resign_sweep()
 RETURNS TABLE(team_id uuid, roles_marked integer, pending_uploads integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  widest interval := (select max(resign_window) from gk_public.tuf_repositories);
begin
  if widest is null then
    return;
  end if;
  perform 1
     from gk_public.tuf_roles ro
     join gk_public.tuf_repositories p on p.team_id = ro.team_id
    where not ro.dirty
      and ro.expires < now() + widest
      and ro.expires < now() + p.resign_window
    order by ro.team_id, ro.role
      for update of ro;

  return query
  with marked as (
    update gk_public.tuf_roles ro
       set dirty = true, dirty_since = now(), dirty_generation = ro.dirty_generation + 1
      from gk_public.tuf_repositories p
     where p.team_id = ro.team_id
       and not ro.dirty
       and ro.expires < now() + widest
       and ro.expires < now() + p.resign_window
    returning ro.team_id
  ), marked_per_team as (
    select m.team_id, count(*)::int as n from marked m group by m.team_id
  ), dirty_teams as (
    select distinct ro.team_id from gk_public.tuf_roles ro where ro.dirty
  ), pending as (
    select m.team_id, count(*)::int as n
      from gk_public.tuf_metadata m
     where m.uploaded_at is null
     group by m.team_id
  ), teams as (
    select t.team_id from marked_per_team t
    union select d.team_id from dirty_teams d
    union select p.team_id from pending p
  )
  select t.team_id, coalesce(mk.n, 0), coalesce(pd.n, 0)
    from teams t
    left join marked_per_team mk on mk.team_id = t.team_id
    left join pending pd on pd.team_id = t.team_id;

  -- RETURN QUERY does not leave the function: now schedule those teams' publishes.
  perform gk_private.tuf_schedule_publish(array(
    select ro.team_id from gk_public.tuf_roles ro where ro.dirty
    union
    select m.team_id from gk_public.tuf_metadata m where m.uploaded_at is null
  ));
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_schedule_publish(team_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  r record;
begin
  for r in
    select p.team_id, greatest(p.publish_delay, 2 * p.last_sign_duration) as publish_delay
      from gk_public.tuf_repositories p
     where p.team_id = any(team_ids)
     order by p.team_id
  loop
    perform gk_private.enqueue(
      'tuf__publish',
      jsonb_build_object('team_id', r.team_id),
      job_key := 'tuf__publish:' || r.team_id,
      run_at := now() + r.publish_delay,
      job_key_mode := 'preserve_run_at'
    );
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_utf16_key(s text)
 RETURNS bytea
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select coalesce(decode(string_agg(
           case when cp < 65536 then lpad(to_hex(cp), 4, '0')
                else to_hex(55296 + ((cp - 65536) >> 10)) || to_hex(56320 + ((cp - 65536) & 1023)) end,
           '' order by n), 'hex'), '\x'::bytea)
    from (select ascii(c) as cp, n from string_to_table(s, null) with ordinality as t (c, n)) x
$function$;

CREATE OR REPLACE FUNCTION gk_private.tuf_valid_hashes(hashes jsonb)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
  select jsonb_typeof(hashes) = 'object'
     and hashes <> '{}'::jsonb
     and not exists (
       select 1 from jsonb_each(hashes) h
        where h.key !~ '^[a-z0-9_-]+$' or length(h.key) > 32
           or jsonb_typeof(h.value) <> 'string'
           -- Lengths checked apart: a bounded repetition {16,254} makes the regex ~10x slower.
           or (h.value #>> '{}') !~ '^[0-9a-f]+$' or length(h.value #>> '{}') not between 16 and 254
     )
$function$;

CREATE OR REPLACE FUNCTION gk_private.volume_create_failed(id bigint, error text)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  update gk_public.volumes v set state = 'failed', state_changed_at = now(), last_error = left(error, 2000)
   where v.id = volume_create_failed.id and v.state = 'creating'
  returning true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volume_created(id bigint)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  update gk_public.volumes v set state = 'created', state_changed_at = now(), last_error = null
   where v.id = volume_created.id and v.state = 'creating'
  returning true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_activate_collector()
 RETURNS void
 LANGUAGE sql
AS $function$
  select gk_private.reconciler_activate('volumes__collect');
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_collect()
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_containers int := gk_private.containers_collect();
  v_failed int := gk_private.volumes_expire_failed();
  v_marked int := gk_private.volumes_mark_orphans();
  v_missing int := gk_private.volumes_remove_missing();
begin
  return jsonb_build_object('containers_removed', v_containers, 'failed_expired', v_failed, 'marked', v_marked,
                            'missing_removed', v_missing);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_collectable_workers()
 RETURNS TABLE(id uuid, name text, address text, state text)
 LANGUAGE sql
 STABLE
AS $function$
  select w.id, w.name, w.address, w.state from gk_public.workers w
   where w.state = any (gk_private.workers_serving_states()) and w.expires_at > now() and w.address is not null
   order by w.name;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_creating_timeout()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$ select gk_private.volumes_setting('volumes_creating_timeout', interval '5 minutes'); $function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_destroy_failed(worker_id uuid, handles uuid[], errors text[])
 RETURNS integer
 LANGUAGE sql
AS $function$
  with failed as (
    update gk_public.volumes v
       set attempts = v.attempts + 1,
           last_error = left(e.error, 2000),
           next_attempt_at = now() + gk_private.bin_backoff(v.attempts + 1)
      from unnest(handles, errors) as e(handle, error)
     where v.worker_id = volumes_destroy_failed.worker_id and v.handle = e.handle and v.next_attempt_at is not null
    returning 1)
  select count(*)::int from failed;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_destroyed(worker_id uuid, handles uuid[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  v_gone int;
begin
  perform set_config('groundskeeper.volumes_collecting', 'on', true);
  delete from gk_public.volumes v
   where v.worker_id = volumes_destroyed.worker_id and v.handle = any (handles) and v.next_attempt_at is not null;
  get diagnostics v_gone = row_count;
  perform set_config('groundskeeper.volumes_collecting', '', true);
  return v_gone;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_due_destroys(worker_id uuid, max_items integer)
 RETURNS TABLE(id bigint, handle uuid)
 LANGUAGE sql
 STABLE
AS $function$
  select v.id, v.handle from gk_public.volumes v
   where v.worker_id = volumes_due_destroys.worker_id and v.state = 'destroying' and v.next_attempt_at <= now()
   order by v.next_attempt_at
   limit max_items;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_expire_failed()
 RETURNS integer
 LANGUAGE sql
AS $function$
  with expired as (
    update gk_public.volumes v
       set state = 'destroying', state_changed_at = now(), attempts = 0, next_attempt_at = now()
      from gk_public.workers w
     where w.id = v.worker_id and w.state = any (gk_private.workers_serving_states())
       and v.state = 'failed' and v.state_changed_at < now() - gk_private.volumes_failed_grace()
    returning 1)
  select count(*)::int from expired;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_failed_grace()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$ select gk_private.volumes_setting('volumes_failed_grace', interval '1 hour'); $function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_lease()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$ select gk_private.volumes_setting('volumes_lease', interval '2 minutes'); $function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_mark_orphans(worker_ids uuid[] DEFAULT NULL::uuid[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
declare
  v_marked int;
begin
  if worker_ids is null then
    perform pg_advisory_xact_lock(hashtextextended('volumes_mark_orphans', 0));
  else
    perform pg_advisory_xact_lock_shared(hashtextextended('volumes_mark_orphans', 0));
  end if;
  for attempt in 1..5 loop
    begin
      -- Candidates are locked, then updated by their tuple id (a TID scan) rather than joined
      -- back to the table (a scan of every volume). A candidate changed by another transaction
      -- after this statement's snapshot is locked in its new version, invisible to the update, and
      -- so left for the next mark.
      with candidates as materialized (
        select v.ctid as tid
          from gk_public.volumes v
          join gk_public.workers w on w.id = v.worker_id
         where v.state = 'created'
           and v.container_id is null and v.worker_resource_cache_id is null
           and v.worker_base_resource_type_id is null and v.worker_task_cache_id is null
           and w.state = any (gk_private.workers_serving_states())
           and (worker_ids is null or v.worker_id = any (worker_ids))
           and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)
           for update of v skip locked),
      marked as (
        update gk_public.volumes v
           set state = 'destroying', state_changed_at = now(), attempts = 0, last_error = null, next_attempt_at = now()
         where v.ctid = any (array(select c.tid from candidates c))
        returning 1)
      select count(*)::int into v_marked from marked;
      return v_marked;
    exception when foreign_key_violation or restrict_violation then
      if attempt = 5 then
        raise;
      end if;
    end;
  end loop;
  return 0;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_missing_grace()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$ select gk_private.volumes_setting('volumes_missing_grace', interval '5 minutes'); $function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_ownerless(v gk_public.volumes)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select v.container_id is null and v.worker_resource_cache_id is null
     and v.worker_base_resource_type_id is null and v.worker_task_cache_id is null;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_remove_missing()
 RETURNS integer
 LANGUAGE sql
AS $function$
  with recursive missing as (
    select v.id from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
     where v.missing_since < now() - gk_private.volumes_missing_grace()
       and v.state in ('created', 'failed')
       and w.state = any (gk_private.workers_serving_states())
    union
    select c.id from gk_public.volumes c join missing m on c.parent_id = m.id),
  gone as (delete from gk_public.volumes v using missing m where v.id = m.id returning 1)
  select count(*)::int from gone;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_report(worker_id uuid, live uuid[], building uuid[] DEFAULT '{}'::uuid[])
 RETURNS jsonb
 LANGUAGE sql
AS $function$
  -- One full join of the worker's rows with the report (a hash join on the handles as passed: no
  -- de-duplication of the whole report first, which cost a third of the statement at 100,000
  -- handles), keeping only the rows something happens to (normally a few): the steps below scan
  -- that, not every volume of the worker again. A handle reported twice joins its row twice; an
  -- UPDATE or DELETE still changes the row once, and adoption takes each unknown handle once.
  with known as materialized (
    select v.id, v.handle, v.state, v.missing_since, v.state_changed_at, r.h as reported_handle,
           r.h is not null as on_agent,
           v.handle = any (volumes_report.building) as in_progress
      from (select * from gk_public.volumes x where x.worker_id = volumes_report.worker_id) v
      full join unnest(volumes_report.live) r(h) on r.h = v.handle
     where v.id is null or r.h is null or v.state in ('destroying', 'creating') or v.missing_since is not null),
  adopted as (
    insert into gk_public.volumes (worker_id, handle, state, adopted, next_attempt_at)
    select distinct volumes_report.worker_id, k.reported_handle, 'destroying', true, now()
      from known k
     where k.id is null
    on conflict on constraint volumes_worker_handle_key do nothing
    returning 1),
  confirmed as (
    delete from gk_public.volumes v using known k
     where v.id = k.id and k.state = 'destroying' and not k.on_agent
    returning 1),
  completed as (
    update gk_public.volumes v set state = 'created', state_changed_at = now()
      from known k
     where v.id = k.id and k.state = 'creating' and k.on_agent
    returning 1),
  failed as (
    update gk_public.volumes v
       set state = 'failed', state_changed_at = now(),
           last_error = 'not on the agent ' || gk_private.volumes_creating_timeout() || ' after creation started'
      from known k
     where v.id = k.id and k.state = 'creating' and not k.on_agent and not k.in_progress
       and k.state_changed_at < now() - gk_private.volumes_creating_timeout()
    returning 1),
  missing as (
    update gk_public.volumes v set missing_since = now()
      from known k
     where v.id = k.id and k.state in ('created', 'failed') and not k.on_agent and k.missing_since is null
    returning 1),
  found as (
    update gk_public.volumes v set missing_since = null
      from known k
     where v.id = k.id and k.missing_since is not null and k.on_agent
    returning 1),
  stamp as (
    update gk_public.workers w set last_report_at = now() where w.id = volumes_report.worker_id returning 1)
  select jsonb_build_object(
    'reported', cardinality(volumes_report.live),
    'unknown', (select count(*) from adopted),
    'confirmed', (select count(*) from confirmed),
    'completed', (select count(*) from completed),
    'failed', (select count(*) from failed),
    'missing', (select count(*) from missing),
    'found', (select count(*) from found),
    'stamped', (select count(*) from stamp));
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_setting(name text, fallback interval)
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$
  select coalesce(nullif(current_setting('groundskeeper.' || name, true), '')::interval, fallback);
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_worker_lease(worker_id uuid, lease interval DEFAULT NULL::interval)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  update gk_public.workers w set collector_lease_until = now() + coalesce(lease, gk_private.volumes_lease())
   where w.id = volumes_worker_lease.worker_id
     and (w.collector_lease_until is null or w.collector_lease_until < now())
  returning true;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_worker_lease_renew(worker_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.workers w set collector_lease_until = now() + gk_private.volumes_lease()
   where w.id = volumes_worker_lease_renew.worker_id and w.collector_lease_until < now() + gk_private.volumes_lease() / 2;
$function$;

CREATE OR REPLACE FUNCTION gk_private.volumes_worker_release(worker_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
  update gk_public.workers w set collector_lease_until = null where w.id = volumes_worker_release.worker_id;
$function$;

CREATE OR REPLACE FUNCTION gk_private.worker_by_name(name text)
 RETURNS gk_public.workers
 LANGUAGE plpgsql
AS $function$
declare
  v gk_public.workers;
begin
  select * into v from gk_public.workers w where w.name = worker_by_name.name for update;
  if not found then
    raise exception 'worker % not found', worker_by_name.name using errcode = 'P0002';
  end if;
  return v;
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.worker_heartbeat(worker_id uuid, live_volumes integer, dead_volumes integer)
 RETURNS text
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update gk_public.workers w
     set last_heartbeat_at = case when w.state = 'landed' then w.last_heartbeat_at else now() end,
         expires_at = case when w.state = 'landed' then w.expires_at else now() + w.heartbeat_ttl end,
         live_volumes = worker_heartbeat.live_volumes,
         dead_volumes = worker_heartbeat.dead_volumes,
         state = case when w.state = 'stalled' then 'running' else w.state end,
         state_changed_at = case when w.state = 'stalled' then now() else w.state_changed_at end,
         stalled_since = case when w.state = 'stalled' then null else w.stalled_since end
   where w.id = worker_heartbeat.worker_id
  returning w.state;
$function$;
grant execute on function gk_private.worker_heartbeat(uuid,integer,integer) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.worker_registered(worker_id uuid, address text, agent_version text, heartbeat_ttl interval DEFAULT NULL::interval)
 RETURNS gk_public.workers
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update gk_public.workers w
     set address = worker_registered.address,
         agent_version = left(worker_registered.agent_version, 100),
         heartbeat_ttl = coalesce(worker_registered.heartbeat_ttl, w.heartbeat_ttl),
         last_heartbeat_at = now(),
         expires_at = now() + coalesce(worker_registered.heartbeat_ttl, w.heartbeat_ttl),
         state = case when w.state in ('landed', 'stalled') then 'running' else w.state end,
         state_changed_at = case when w.state in ('landed', 'stalled') then now() else w.state_changed_at end,
         stalled_since = null
   where w.id = worker_registered.worker_id
  returning w.*;
$function$;
grant execute on function gk_private.worker_registered(uuid,text,text,interval) to gk_peer;

CREATE OR REPLACE FUNCTION gk_private.workers_busy(worker_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select exists (select 1 from gk_public.containers c join gk_public.builds b on b.id = c.build_id
                  where c.worker_id = workers_busy.worker_id and b.status = 'running');
$function$;

CREATE OR REPLACE FUNCTION gk_private.workers_reconcile()
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
declare
  v_stalled int;
  v_landed int;
  v_retired int;
  v_pruned int := 0;
  v_timeout interval := gk_private.workers_stalled_timeout();
begin
  with s as (
    update gk_public.workers w set state = 'stalled', stalled_since = now(), state_changed_at = now()
     where w.state = 'running' and w.expires_at < now()
    returning 1)
  select count(*) into v_stalled from s;
  with l as (
    update gk_public.workers w set state = 'landed', address = null, expires_at = null, state_changed_at = now()
     where w.state = 'landing' and not gk_private.workers_busy(w.id)
    returning 1)
  select count(*) into v_landed from l;
  -- Deleting cascades to its containers and volumes and revokes its certificate (SET NULL).
  with r as (
    delete from gk_public.workers w where w.state = 'retiring' and not gk_private.workers_busy(w.id)
    returning 1)
  select count(*) into v_retired from r;
  if v_timeout is not null then
    with p as (
      delete from gk_public.workers w where w.state = 'stalled' and w.stalled_since < now() - v_timeout
      returning 1)
    select count(*) into v_pruned from p;
  end if;
  return jsonb_build_object('stalled', v_stalled, 'landed', v_landed, 'retired', v_retired, 'pruned', v_pruned);
end;
$function$;

CREATE OR REPLACE FUNCTION gk_private.workers_serving_states()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
  select array['running', 'landing', 'retiring'];
$function$;

CREATE OR REPLACE FUNCTION gk_private.workers_stalled_timeout()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$
  select nullif(current_setting('groundskeeper.stalled_worker_timeout', true), '')::interval;
$function$;
