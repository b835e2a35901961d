-- Up Migration
-- The last version report each ECU had accepted in a verified manifest (src/robots/manifest.ts,
-- gk_private.robot_manifest_accepted in sql/640_robots_api.sql): its report counter and time,
-- which a later manifest must exceed (the replay check: an older or repeated manifest is
-- refused), what it reported installed, and how that compares with what the director's targets
-- list for the ECU (gk_private.director_targets). One row per ECU, replaced by each accepted
-- report: the history is in robot_manifests.
create table gk_public.ecu_version_reports (
  ecu_id uuid primary key,
  team_id uuid not null,
  -- Uptane's report counter: strictly increasing per ECU (tg_ecu_version_reports__counter_increases).
  report_counter bigint not null check (report_counter between 1 and 9007199254740991),
  -- The time the report carries (timeserver_time), within the accepted clock skew of received_at.
  reported_at timestamptz not null,
  received_at timestamptz not null default now(),
  -- The manifest that carried it (retention prunes manifests: the state stays).
  manifest_id bigint references gk_public.robot_manifests (id) on delete set null,
  -- What the ECU reports installed (filename, length and hashes of its installed image).
  reported_filepath text not null check (length(reported_filepath) between 1 and 255),
  reported_length bigint not null check (reported_length >= 0),
  reported_sha256 text check (reported_sha256 ~ '^[0-9a-f]{64}$'),
  reported_sha512 text check (reported_sha512 ~ '^[0-9a-f]{128}$'),
  -- What the director's targets listed for the ECU at that report (null: nothing), and the
  -- rollout that listed it (null: the image the ECU was recorded running). Plain id references:
  -- a robot moved to another team keeps its counters, while these name the old team's rows.
  expected_image_id uuid references gk_public.images (id) on delete set null,
  rollout_id uuid references gk_public.rollouts (id) on delete set null,
  -- matches: the ECU runs what the targets list; pending: a rollout lists an image the ECU has
  -- not installed yet and it still runs the one it was recorded running; discrepancy: an image
  -- the director never assigned it.
  verdict text not null check (verdict in ('matches', 'pending', 'discrepancy')),
  detail text not null check (length(detail) <= 1000),
  check (reported_sha256 is not null or reported_sha512 is not null),
  -- The ECU's row moves with it (ECUs follow their robot to another team by ON UPDATE CASCADE).
  foreign key (team_id, ecu_id) references gk_public.ecus (team_id, id) on update cascade on delete cascade
);
-- Status lists the latest discrepancies (src/robots/status.ts).
create index ecu_version_reports_discrepancy_idx on gk_public.ecu_version_reports (received_at desc) where verdict = 'discrepancy';
-- The foreign keys' ON DELETE SET NULL (retention's manifest prune, an image or rollout deleted).
create index ecu_version_reports_manifest_idx on gk_public.ecu_version_reports (manifest_id) where manifest_id is not null;
create index ecu_version_reports_image_idx on gk_public.ecu_version_reports (expected_image_id) where expected_image_id is not null;
create index ecu_version_reports_rollout_idx on gk_public.ecu_version_reports (rollout_id) where rollout_id is not null;

-- Down Migration
drop function if exists gk_private.robot_manifest_accepted(uuid, uuid, jsonb, jsonb);
drop function if exists gk_private.robot_manifest_max_skew();
drop function if exists gk_private.robot_manifest_reports(jsonb);
drop table gk_public.ecu_version_reports;
drop function if exists gk_private.tg_ecu_version_reports__counter_increases();
