-- Data for the snapshot 9222004.sql, written against that release's schema (plain INSERTs: the
-- old schema is the subject, so the current fixture builders do not apply). Every table gets
-- rows; certificates in every state, the bin, a TUF repository with history, activations,
-- sagas, images, build workers with volumes, the audit log, export nodes and exports, rollouts with
-- ECUs and groups, director metadata. Triggers are off while filling
-- (session_replication_role = replica) so rows land in exactly the state written here; the
-- pending jobs are added afterwards with graphile_worker.add_job under their task names.
-- test/upgrade/upgrade.test.ts fails when a table of the snapshot has no row here.
set session_replication_role = replica;

insert into gk_public.teams (id, name) values
  ('11111111-1111-4111-8111-111111111111', 'acme'),
  ('22222222-2222-4222-8222-222222222222', 'globex');
insert into gk_public.robots (id, team_id, name) values
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'r2'),
  ('a0000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'c3po');
insert into gk_public.provisioning_credentials (id, team_id, name, status, expires_at, revoked_at, expired_at) values
  ('b0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'factory', 'issued', now() + interval '30 days', null, null),
  ('b0000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'leaked', 'revoked', now() + interval '30 days', now() - interval '1 day', null),
  ('b0000000-0000-4000-8000-000000000003', '22222222-2222-4222-8222-222222222222', 'old', 'expired', now() - interval '1 day', null, now() - interval '1 day');

insert into gk_public.workers (id, name, state, address, last_heartbeat_at, expires_at, stalled_since, agent_version, live_volumes, dead_volumes) values
  ('c0000000-0000-4000-8000-000000000001', 'builder-1', 'running', 'https://127.0.0.1:7001', now(), now() + interval '1 minute', null, '0.1.0', 3, 0),
  ('c0000000-0000-4000-8000-000000000002', 'builder-2', 'stalled', 'https://127.0.0.1:7002', now() - interval '10 minutes', now() - interval '9 minutes', now() - interval '9 minutes', '0.1.0', 0, 0);
insert into gk_public.controllers (id, name) values ('d0000000-0000-4000-8000-000000000001', 'groundskeeper');

-- Certificates in every state (and of every owner kind).
insert into gk_public.certificates (id, owner_team_id, robot_id, provisioning_credential_id, team_id, worker_id, controller_id, profile, status,
                                    public_key_pem, ca_ref, serial, pem, not_after, issued_at, revoke_requested_at, revoked_at, revocation_reason,
                                    never_issued, attempts, last_error, next_attempt_at) values
  ('e0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', null, null, null, null, 'robot', 'issuing',
   'PUBKEY-1', null, null, null, now() + interval '1 year', null, null, null, null, false, 2, 'CA unreachable', now() + interval '5 minutes'),
  ('e0000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000002', null, null, null, null, 'robot', 'issued',
   'PUBKEY-2', 'local:a2', 'a2', 'PEM-2', now() + interval '1 year', now() - interval '1 day', null, null, null, false, 0, null, null),
  ('e0000000-0000-4000-8000-000000000003', '11111111-1111-4111-8111-111111111111', null, null, null, null, null, 'robot', 'revoking',
   'PUBKEY-3', 'local:a3', 'a3', 'PEM-3', now() + interval '1 year', now() - interval '2 days', now() - interval '1 hour', null, null, false, 3, 'CA said 503', now() + interval '1 hour'),
  ('e0000000-0000-4000-8000-000000000004', '11111111-1111-4111-8111-111111111111', null, null, null, null, null, 'robot', 'revoked',
   'PUBKEY-4', 'local:a4', 'a4', 'PEM-4', now() + interval '1 year', now() - interval '3 days', now() - interval '2 days', now() - interval '2 days', 'cessationOfOperation', false, 1, null, null),
  ('e0000000-0000-4000-8000-000000000005', '22222222-2222-4222-8222-222222222222', null, null, null, null, null, 'client_auth', 'expired',
   'PUBKEY-5', 'local:a5', 'a5', 'PEM-5', now() - interval '1 day', now() - interval '1 year', null, null, null, false, 0, null, null),
  ('e0000000-0000-4000-8000-000000000006', '22222222-2222-4222-8222-222222222222', null, null, null, null, null, 'robot', 'failed',
   'PUBKEY-6', null, null, null, now() + interval '1 year', null, null, null, null, false, 25, 'CSR rejected', null),
  ('e0000000-0000-4000-8000-000000000007', '11111111-1111-4111-8111-111111111111', null, null, null, null, null, 'robot', 'revoked',
   null, null, null, null, now() + interval '1 year', null, now() - interval '1 hour', now() - interval '1 hour', 'unspecified', true, 0, null, null),
  ('e0000000-0000-4000-8000-000000000008', '11111111-1111-4111-8111-111111111111', null, 'b0000000-0000-4000-8000-000000000001', null, null, null, 'provisioning', 'issued',
   'PUBKEY-8', 'local:a8', 'a8', 'PEM-8', now() + interval '30 days', now() - interval '1 hour', null, null, null, false, 0, null, null),
  ('e0000000-0000-4000-8000-000000000009', '11111111-1111-4111-8111-111111111111', null, null, '11111111-1111-4111-8111-111111111111', null, null, 'client_auth', 'issued',
   'PUBKEY-9', 'local:a9', 'a9', 'PEM-9', now() + interval '1 year', now() - interval '1 hour', null, null, null, false, 0, null, null),
  ('e0000000-0000-4000-8000-00000000000a', null, null, null, null, 'c0000000-0000-4000-8000-000000000001', null, 'worker', 'issued',
   'PUBKEY-10', 'local:aa', 'aa', 'PEM-10', now() + interval '90 days', now() - interval '1 hour', null, null, null, false, 0, null, null),
  ('e0000000-0000-4000-8000-00000000000b', null, null, null, null, null, 'd0000000-0000-4000-8000-000000000001', 'controller', 'issued',
   'PUBKEY-11', 'local:ab', 'ab', 'PEM-11', now() + interval '90 days', now() - interval '1 hour', null, null, null, false, 0, null, null);
insert into gk_private.certificate_private_keys (certificate_id, owner_team_id, sealed_key) values
  ('e0000000-0000-4000-8000-000000000008', '11111111-1111-4111-8111-111111111111', 'v1:sealed-provisioning-key');
insert into gk_private.controller_keys (certificate_id, sealed_key) values ('e0000000-0000-4000-8000-00000000000b', 'v1:sealed-controller-key');

-- The local CA's own records.
insert into gk_private.local_ca_authorities (name, certificate_pem, private_key_sealed, revocation_seq, crl_number, crl_revision, crl_pem, crl_this_update, crl_next_update) values
  ('groundskeeper', 'CA-PEM', 'v1:sealed-ca-key', 2, 1, 1, 'CRL-PEM', now() - interval '1 hour', now() + interval '1 day');
insert into gk_private.local_ca_certificates (id, authority, common_name, profile, public_key_pem, not_after, status, serial, pem, issued_at, revoked_at, reason, failure) values
  ('f0000000-0000-4000-8000-000000000001', 'groundskeeper', 'r2', 'robot', 'PUBKEY-2', now() + interval '1 year', 'issued', 'a2', 'PEM-2', now() - interval '1 day', null, null, null),
  ('f0000000-0000-4000-8000-000000000002', 'groundskeeper', 'gone', 'robot', 'PUBKEY-4', now() + interval '1 year', 'revoked', 'a4', 'PEM-4', now() - interval '3 days', now() - interval '2 days', 'cessationOfOperation', null),
  ('f0000000-0000-4000-8000-000000000003', 'groundskeeper', 'later', 'robot', 'PUBKEY-1', now() + interval '1 year', 'pending', null, null, null, null, null, null),
  ('f0000000-0000-4000-8000-000000000004', 'groundskeeper', 'bad', 'robot', 'PUBKEY-6', now() + interval '1 year', 'failed', null, null, null, null, null, 'bad CSR');

-- The bin: a deleted team's blobs, part-way through.
insert into gk_public.purge_items (kind, ref, team_id, attempts, last_error, next_attempt_at, progress_after, progress_count) values
  ('blob_prefix', 'teams/33333333-3333-4333-8333-333333333333/', null, 2, 'S3 timeout', now() + interval '1 hour', 'teams/33333333-3333-4333-8333-333333333333/images/b', 120);

-- A TUF repository with history.
insert into gk_public.tuf_repositories (team_id, bit_length, root_version, root_threshold, root_expires, online_key_id, online_public_key) values
  ('11111111-1111-4111-8111-111111111111', 1, 2, 1, now() + interval '1 year', repeat('ab', 32), repeat('cd', 32));
insert into gk_private.tuf_online_keys (team_id, key_id, sealed_private_key) values ('11111111-1111-4111-8111-111111111111', repeat('ab', 32), 'v1:sealed-online-key');
insert into gk_private.tuf_upload_cursors (team_id, timestamp_version, uploaded_at) values ('11111111-1111-4111-8111-111111111111', 2, now());
insert into gk_public.tuf_roles (team_id, role, bin, version, expires, dirty, dirty_since, dirty_generation) values
  ('11111111-1111-4111-8111-111111111111', 'targets', null, 1, now() + interval '365 days', false, null, 1),
  ('11111111-1111-4111-8111-111111111111', 'snapshot', null, 2, now() + interval '7 days', false, null, 2),
  ('11111111-1111-4111-8111-111111111111', 'timestamp', null, 2, now() + interval '1 day', false, null, 2),
  ('11111111-1111-4111-8111-111111111111', 'bins-0', 0, 2, now() + interval '30 days', false, null, 2),
  ('11111111-1111-4111-8111-111111111111', 'bins-1', 1, 0, null, true, now(), 3);
insert into gk_public.tuf_metadata (team_id, role, version, expires, document, uploaded_at) values
  ('11111111-1111-4111-8111-111111111111', 'root', 1, now() + interval '1 year', '{"signed":{"_type":"root","version":1}}', now()),
  ('11111111-1111-4111-8111-111111111111', 'root', 2, now() + interval '1 year', '{"signed":{"_type":"root","version":2}}', now()),
  ('11111111-1111-4111-8111-111111111111', 'timestamp', 1, now() + interval '1 day', '{"signed":{"_type":"timestamp","version":1}}', now()),
  ('11111111-1111-4111-8111-111111111111', 'timestamp', 2, now() + interval '1 day', '{"signed":{"_type":"timestamp","version":2}}', null);
insert into gk_public.tuf_targets (team_id, path, length, hashes, custom) values
  ('11111111-1111-4111-8111-111111111111', 'firmware/r2-1.0.bin', 1024, jsonb_build_object('sha256', repeat('0', 64)), '{"hardware_ids": ["r2"]}'),
  ('11111111-1111-4111-8111-111111111111', 'firmware/r2-1.1.bin', 2048, jsonb_build_object('sha256', repeat('1', 64)), null);

insert into gk_public.images (id, team_id, name, version, blob_key, length, sha256, sha512, hardware_ids) values
  ('10000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'r2-firmware', '1.0', 'teams/11111111-1111-4111-8111-111111111111/images/r2-1.0', 1024,
   repeat('a', 64), repeat('b', 128), array['r2', 'r2-mk2']);
insert into gk_public.ecu_telemetry (team_id, robot_id, ecu_serial, event_type, device_time, recorded_at, body) values
  ('11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', 'ecu-1', 'boot', now() - interval '1 minute', now(), '{"ok": true}');
insert into gk_public.robot_manifests (team_id, robot_id, valid, body) values
  ('11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', true, '{"ecus": ["ecu-1"]}');

-- Reconciler history: succeeded, failed with item errors, one cut off by a dead worker.
insert into gk_public.activations (id, task, started_at, finished_at, status, counts, error, details, worker_id) overriding system value values
  (1001, 'retention__sweep', now() - interval '2 hours', now() - interval '2 hours' + interval '1 second', 'succeeded', '{"deleted": 12}', null, '{"deleted": 12, "errors": []}', 'pool-a'),
  (1002, 'bin__reconcile', now() - interval '1 hour', now() - interval '1 hour' + interval '1 second', 'failed', '{}', 'CA down', '{"errors": ["certificate: CA down"]}', 'pool-a'),
  (1003, 'certificates__expire', now() - interval '1 minute', null, 'running', '{}', null, '{}', 'pool-dead');
insert into gk_public.activation_errors (activation_id, item, error) values (1002, 'certificate', 'CA down');
insert into gk_private.activation_tasks (task, last_activation_id, last_success_id, succeeded, failed) values
  ('retention__sweep', 1001, 1001, 40, 0),
  ('bin__reconcile', 1002, null, 10, 1),
  ('certificates__expire', 1003, null, 5, 0);

-- A saga half-way, one finished.
insert into gk_public.sagas (id, name, params, steps, state, step, outputs, created_at, updated_at, finished_at) values
  ('20000000-0000-4000-8000-000000000001', 'exports__bundle', '{"team": "acme", "generation": 1}', array['take', 'pack', 'publish'], 'running', 1, '{"take": {"ok": true}}', now(), now(), null),
  ('20000000-0000-4000-8000-000000000002', 'exports__bundle', '{"team": "globex", "generation": 1}', array['take', 'pack'], 'succeeded', 2, '{}', now(), now(), now());
insert into gk_public.saga_events (saga_id, step, step_name, event) values
  ('20000000-0000-4000-8000-000000000001', 0, 'take', 'done'),
  ('20000000-0000-4000-8000-000000000002', 0, 'take', 'done'),
  ('20000000-0000-4000-8000-000000000002', 1, 'pack', 'done');

-- The admin API's tokens and audit log.
insert into gk_private.api_tokens (id, name, role, token_sha256, last_used_at, revoked_at) values
  ('30000000-0000-4000-8000-000000000001', 'ops', 'gk_admin', sha256('gk_ops'::bytea), now(), null),
  ('30000000-0000-4000-8000-000000000002', 'old', 'gk_viewer', sha256('gk_old'::bytea), null, now());
insert into gk_public.audit_events (token_id, token_name, role, operation, operation_name, fields, arguments, outcome, error, duration_ms) values
  ('30000000-0000-4000-8000-000000000001', 'ops', 'gk_admin', 'mutation', 'MakeTeam', array['createTeam'], '{"createTeam": {"input": {"team": {"name": "acme"}}}}', 'succeeded', null, 12),
  (null, 'gone', 'gk_admin', 'mutation', null, array['deleteTeamByName'], '{}', 'failed', 'permission denied', 3);

-- Build workers' world: resource types, caches, builds, containers, volumes (a parent and child).
insert into gk_public.base_resource_types (id, name) overriding system value values (1, 'git');
insert into gk_public.worker_base_resource_types (id, worker_id, base_resource_type_id, version) overriding system value values
  (1, 'c0000000-0000-4000-8000-000000000001', 1, '2.45');
insert into gk_public.resource_configs (id, base_resource_type_id, source_hash) overriding system value values (1, 1, 'src-hash');
insert into gk_public.resource_caches (id, resource_config_id, version_digest, params_hash) overriding system value values (1, 1, 'sha256:abc', '');
insert into gk_public.worker_resource_caches (id, worker_id, resource_cache_id, worker_base_resource_type_id) overriding system value values
  (1, 'c0000000-0000-4000-8000-000000000001', 1, 1);
insert into gk_public.builds (id, team_id, name, status, completed_at) overriding system value values
  (1, '11111111-1111-4111-8111-111111111111', 'nightly', 'running', null),
  (2, '11111111-1111-4111-8111-111111111111', 'release', 'succeeded', now());
insert into gk_public.resource_cache_uses (resource_cache_id, build_id) values (1, 1);
insert into gk_public.containers (id, worker_id, team_id, build_id) overriding system value values
  (1, 'c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 1);
insert into gk_public.worker_task_caches (id, worker_id, team_id, name) overriding system value values
  (1, 'c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'npm-cache');
insert into gk_public.volumes (id, worker_id, team_id, state, container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id,
                               parent_id, parent_state, attempts, last_error, next_attempt_at) overriding system value values
  (1, 'c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'created', 1, null, null, null, null, null, 0, null, null),
  (2, 'c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'created', 1, null, null, null, 1, 'created', 0, null, null),
  (3, 'c0000000-0000-4000-8000-000000000001', null, 'created', null, 1, null, null, null, null, 0, null, null),
  (4, 'c0000000-0000-4000-8000-000000000001', null, 'created', null, null, 1, null, null, null, 0, null, null),
  (5, 'c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'created', null, null, null, 1, null, null, 0, null, null),
  (6, 'c0000000-0000-4000-8000-000000000001', null, 'destroying', null, null, null, null, null, null, 4, 'agent unreachable', now() + interval '1 hour'),
  (7, 'c0000000-0000-4000-8000-000000000002', null, 'creating', null, null, null, null, null, null, 0, null, null);
-- The master key's fingerprint and a live job-queue worker.
insert into gk_private.master_key (fingerprint) values (repeat('5e', 32));
insert into gk_private.queue_workers (id, hostname, pid, heartbeat_at, expires_at) values ('pool-a', 'builder-host', 4242, now(), now() + interval '1 minute');

-- Export nodes (one in service, one expunged) and export records in several states.
insert into gk_public.export_nodes (id, worker_id, address, state, expunged_at, attachments) values
  ('40000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001', 'https://127.0.0.1:7101', 'in_service', null, 1),
  ('40000000-0000-4000-8000-000000000002', null, 'https://127.0.0.1:7102', 'expunged', now() - interval '1 day', null);
insert into gk_public.exports (id, resource_type, resource_id, state, node_id, attachment_id, url, operating_saga_id, generation, live_at, deleted_at) values
  ('41000000-0000-4000-8000-000000000001', 'image', '10000000-0000-4000-8000-000000000001', 'live', '40000000-0000-4000-8000-000000000001',
   '42000000-0000-4000-8000-000000000001', 'https://127.0.0.1:7101/exports/42000000-0000-4000-8000-000000000001', null, 3, now(), null),
  ('41000000-0000-4000-8000-000000000002', 'image', '10000000-0000-4000-8000-000000000001', 'deleted', '40000000-0000-4000-8000-000000000002',
   '42000000-0000-4000-8000-000000000002', 'https://127.0.0.1:7102/exports/42000000-0000-4000-8000-000000000002', null, 5, now() - interval '2 days', now() - interval '1 day');

-- Robot groups, ECUs, a launched rollout with per-robot and per-ECU rows and events.
insert into gk_public.robot_groups (id, team_id, name) values ('50000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'warehouse');
insert into gk_public.robot_group_members (team_id, group_id, robot_id) values
  ('11111111-1111-4111-8111-111111111111', '50000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001');
insert into gk_public.ecus (id, team_id, robot_id, serial, hardware_id, is_primary, installed_image_id, status, status_at) values
  ('51000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', 'ecu-1', 'r2', true, null, 'download_started', now()),
  ('51000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000002', 'ecu-2', 'r2-mk2', true, '10000000-0000-4000-8000-000000000001', null, null);
insert into gk_public.rollouts (id, team_id, name, target_type, group_id, state, max_failed_robots, launched_at, ended_at, result) values
  ('52000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'r2 1.0 to the warehouse', 'group', '50000000-0000-4000-8000-000000000001', 'launched', 1, now() - interval '1 hour', null, null),
  ('52000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'hand-picked', 'selected_robots', null, 'cancelled', null, null, now() - interval '1 day', 'cancelled by ops');
insert into gk_public.rollout_images (team_id, rollout_id, hardware_id, image_id) values
  ('11111111-1111-4111-8111-111111111111', '52000000-0000-4000-8000-000000000001', 'r2', '10000000-0000-4000-8000-000000000001');
insert into gk_public.rollout_selected_robots (team_id, rollout_id, robot_id) values
  ('11111111-1111-4111-8111-111111111111', '52000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000002');
insert into gk_public.rollout_robots (team_id, rollout_id, robot_id, state, result) values
  ('11111111-1111-4111-8111-111111111111', '52000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001', 'accepted', null),
  ('11111111-1111-4111-8111-111111111111', '52000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000002', 'cancelled', 'rollout cancelled');
insert into gk_public.rollout_robot_ecus (team_id, rollout_id, robot_id, ecu_id, image_id, status) values
  ('11111111-1111-4111-8111-111111111111', '52000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001',
   '51000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'download_started');
insert into gk_public.rollout_events (id, team_id, robot_id, event_id, ecu_id, rollout_id, type, description) overriding system value values
  (1, '11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', '53000000-0000-4000-8000-000000000001',
   '51000000-0000-4000-8000-000000000001', '52000000-0000-4000-8000-000000000001', 'download_started', null);

-- Director metadata: a team's keys and root, one robot signed and one dirty.
insert into gk_public.director_repositories (team_id, root_version, root_expires, root_key_id, online_key_id) values
  ('11111111-1111-4111-8111-111111111111', 1, now() + interval '1 year', repeat('d1', 32), repeat('d2', 32));
insert into gk_private.director_keys (team_id, key_id, role, sealed_private_key) values
  ('11111111-1111-4111-8111-111111111111', repeat('d1', 32), 'root', 'v1:sealed-director-root'),
  ('11111111-1111-4111-8111-111111111111', repeat('d2', 32), 'online', 'v1:sealed-director-online');
insert into gk_public.director_roots (team_id, version, expires, document) values
  ('11111111-1111-4111-8111-111111111111', 1, now() + interval '1 year', '{"signatures":[],"signed":{"_type":"root","version":1}}');
insert into gk_public.robot_directors (robot_id, team_id, dirty, dirty_since, generation, signed_generation, root_version, targets_version, snapshot_version, timestamp_version, expires, signed_at) values
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', true, now(), 3, 2, 1, 2, 2, 2, now() + interval '1 day', now() - interval '1 hour'),
  ('a0000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', false, null, 1, 1, 1, 1, 1, 1, now() + interval '1 day', now());
insert into gk_public.robot_director_documents (robot_id, targets, snapshot, "timestamp") values
  ('a0000000-0000-4000-8000-000000000001', '{"signed":{"_type":"targets","version":2}}', '{"signed":{"_type":"snapshot","version":2}}', '{"signed":{"_type":"timestamp","version":2}}');
-- Since 4696430: ECU keys, the last version report per ECU (against the manifest and the rollout),
-- and an export change recorded by the triggers but not yet settled by the coordinator.
insert into gk_public.ecu_keys (ecu_id, team_id, public_key) values
  ('51000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', repeat('e1', 32));
insert into gk_public.ecu_version_reports (ecu_id, team_id, report_counter, reported_at, manifest_id, reported_filepath, reported_length,
                                           reported_sha256, expected_image_id, rollout_id, verdict, detail) values
  ('51000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 7, now() - interval '5 minutes', 1, 'r2-1.0.img', 4096,
   repeat('ab', 32), '10000000-0000-4000-8000-000000000001', '52000000-0000-4000-8000-000000000001', 'pending', 'installation in progress');
insert into gk_private.export_pending (id, resource_type, resource_id) overriding system value values
  (1, 'image', '10000000-0000-4000-8000-000000000001');
select setval(pg_get_serial_sequence(t, 'id'), 10000)
  from unnest(array['gk_public.activations', 'gk_public.base_resource_types', 'gk_public.worker_base_resource_types', 'gk_public.resource_configs',
                    'gk_public.resource_caches', 'gk_public.worker_resource_caches', 'gk_public.builds', 'gk_public.containers',
                    'gk_public.worker_task_caches', 'gk_public.volumes', 'gk_public.rollout_events', 'gk_private.export_pending']) t;

set session_replication_role = default;

-- Pending work under the task names of this release (the crontab's keys and queues for reconcilers).
select graphile_worker.add_job('system__noop', '{"n": 1}');
select graphile_worker.add_job('system__noop', '{"n": 2}', run_at := now() - interval '1 minute');
select graphile_worker.add_job('retention__sweep', '{}', queue_name := 'retention__sweep', job_key := 'retention__sweep', job_key_mode := 'preserve_run_at');
select graphile_worker.add_job('certificates__expire', '{}', queue_name := 'certificates__expire', job_key := 'certificates__expire', job_key_mode := 'preserve_run_at');
select graphile_worker.add_job('volumes__workers', '{}', queue_name := 'volumes__workers', job_key := 'volumes__workers', job_key_mode := 'preserve_run_at');
select graphile_worker.add_job('tuf__publish', '{"team_id": "11111111-1111-4111-8111-111111111111"}', run_at := now() + interval '1 hour');
select graphile_worker.add_job('exports__coordinate', '{}', queue_name := 'exports__coordinate', job_key := 'exports__coordinate', job_key_mode := 'preserve_run_at');
select graphile_worker.add_job('rollouts__process', '{}', queue_name := 'rollouts__process', job_key := 'rollouts__process', job_key_mode := 'preserve_run_at');
