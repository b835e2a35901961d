-- Up Migration
-- TUF repository per team (DESIGN §4.4). One repository per team, so team_id is its key and
-- every TUF table is keyed by team_id. Targets are plain rows; the bin a target belongs to is a
-- pure function of sha256(path) (TAP 15 succinct hashed bins), so it is derived in SQL.

-- First 32 bits of sha256(utf8(path)) as an unsigned integer: the prefix clients (tuf-js,
-- python-tuf) shift right by 32 - bit_length to find a target's bin. convert_to is only STABLE
-- because of the server encoding; for a given database it never changes, hence IMMUTABLE here.
create function gk_private.tuf_path_hash32(path text) returns bigint
language sql immutable strict parallel safe
as $$
  select ('x' || substr(encode(sha256(convert_to(path, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint
$$;

-- Hash maps of a target: {"sha256": "<hex>", ...}, at least one entry, lower-case hex values.
create function gk_private.tuf_valid_hashes(hashes jsonb) returns boolean
language sql immutable strict parallel safe
as $$
  select jsonb_typeof(hashes) = 'object'
     and hashes <> '{}'::jsonb
     and not exists (
       select 1 from jsonb_each(hashes) h
        where h.key !~ '^[a-z0-9_-]+$' or length(h.key) > 32
           or jsonb_typeof(h.value) <> 'string'
           -- Lengths checked apart: a bounded repetition {16,254} makes the regex ~10x slower.
           or (h.value #>> '{}') !~ '^[0-9a-f]+$' or length(h.value #>> '{}') not between 16 and 254
     )
$$;

create table gk_public.tuf_repositories (
  team_id uuid primary key references gk_public.teams (id) on delete cascade,
  -- 2^bit_length hashed bins: 2 .. 16,384.
  bit_length smallint not null check (bit_length between 1 and 14),
  root_version int not null default 1 check (root_version >= 1),
  root_threshold smallint not null check (root_threshold >= 1),
  root_expires timestamptz not null,
  -- The online key (ed25519) signs targets, bins, snapshot and timestamp. Public half only.
  online_key_id text not null check (online_key_id ~ '^[0-9a-f]{64}$'),
  online_public_key text not null check (online_public_key ~ '^[0-9a-f]{64}$'),
  targets_lifetime interval not null default '365 days',
  bins_lifetime interval not null default '30 days',
  snapshot_lifetime interval not null default '7 days',
  timestamp_lifetime interval not null default '1 day',
  -- A role is re-signed when it expires within this window. Shorter than every lifetime,
  -- otherwise a freshly signed role would be due again at once.
  resign_window interval not null default '6 hours',
  -- Debounce: a publish runs this long after the last target change (batches coalesce).
  publish_delay interval not null default '1 second' check (publish_delay >= interval '0'),
  -- How long the last signing transaction took. The next publish waits at least twice that,
  -- so during a bulk load the publisher gets at most about a third of the time (adaptive
  -- throttle) while small repositories keep publish_delay.
  last_sign_duration interval not null default '0',
  created_at timestamptz not null default now(),
  check (resign_window > interval '0'
         and resign_window < least(targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime))
);
comment on table gk_public.tuf_repositories is 'The TUF repository of a team: hashed bins, online key (public half), lifetimes of the online roles.';

-- The online private key, sealed with SecretBox (AES-256-GCM under the master key).
create table gk_private.tuf_online_keys (
  team_id uuid primary key references gk_public.tuf_repositories (team_id) on delete cascade,
  key_id text not null,
  sealed_private_key text not null check (sealed_private_key like 'v1:%')
);

-- Every online role of a repository: targets, snapshot, timestamp and one row per bin.
-- version/expires are those of the newest signed document; dirty = must be re-signed.
create table gk_public.tuf_roles (
  team_id uuid not null references gk_public.tuf_repositories (team_id) on delete cascade,
  role text not null check (role in ('targets', 'snapshot', 'timestamp') or role ~ '^bins-[0-9a-f]{1,4}$'),
  bin int check (bin between 0 and 16383),
  version int not null default 0 check (version >= 0),
  expires timestamptz,
  dirty boolean not null default true,
  dirty_since timestamptz default now(),
  -- Bumped by every writer that dirties the role: a publisher clears dirty only if it is
  -- unchanged since it read the role's rows, so it needs no lock while it signs.
  dirty_generation bigint not null default 0,
  primary key (team_id, role),
  check ((role like 'bins-%') = (bin is not null)),
  check ((version = 0) = (expires is null)),
  check (dirty = (dirty_since is not null))
);
create unique index tuf_roles_bin_idx on gk_public.tuf_roles (team_id, bin) where bin is not null;
create index tuf_roles_dirty_idx on gk_public.tuf_roles (team_id) where dirty;
-- The resigner's sweep: roles by expiry.
create index tuf_roles_expires_idx on gk_public.tuf_roles (expires) where not dirty;
comment on table gk_public.tuf_roles is 'Online roles of each TUF repository (targets, snapshot, timestamp, bins-XX): current version, expiry, dirty flag.';

create table gk_public.tuf_targets (
  team_id uuid not null references gk_public.tuf_repositories (team_id) on delete cascade,
  path text not null check (length(path) between 1 and 1024 and path !~ '^/' and path !~ '[[:cntrl:]]'),
  length bigint not null check (length >= 0),
  hashes jsonb not null check (gk_private.tuf_valid_hashes(hashes)),
  -- Canonical JSON (what is signed) has no fractional numbers.
  custom jsonb check (custom is null or (jsonb_typeof(custom) = 'object'
                      and not jsonb_path_exists(custom, 'lax $.** ? (@.type() == "number" && @.floor() != @)'))),
  -- Bin = path_hash32 >> (32 - bit_length); bins are contiguous ranges of path_hash32, so the
  -- index below serves "all targets of bin b" as one range scan whatever the bin count.
  path_hash32 bigint not null generated always as (gk_private.tuf_path_hash32(path)) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (team_id, path)
);
create index tuf_targets_bin_idx on gk_public.tuf_targets (team_id, path_hash32);
comment on table gk_public.tuf_targets is 'Targets of a team''s TUF repository. Insert/update/delete freely: the affected bins are marked dirty and a publish is enqueued.';

-- Every signed document, exactly as published. A (role, version) is signed once; a crash
-- before upload is repaired by uploading these bytes again, never by signing again.
create table gk_public.tuf_metadata (
  id bigint generated always as identity primary key,
  team_id uuid not null references gk_public.tuf_repositories (team_id) on delete cascade,
  role text not null,
  version int not null check (version >= 1),
  expires timestamptz not null,
  document text not null,
  created_at timestamptz not null default now(),
  uploaded_at timestamptz,
  unique (team_id, role, version)
);
create index tuf_metadata_pending_idx on gk_public.tuf_metadata (team_id, id) where uploaded_at is null;
create index tuf_metadata_created_idx on gk_public.tuf_metadata (created_at) where role <> 'root';
comment on table gk_public.tuf_metadata is 'Every signed TUF document (role, version), as uploaded to the blob store; uploaded_at is null until it is.';

-- Which timestamp version timestamp.json holds: uploads never move it backwards.
create table gk_private.tuf_upload_cursors (
  team_id uuid primary key references gk_public.tuf_repositories (team_id) on delete cascade,
  timestamp_version int not null default 0,
  uploaded_at timestamptz
);

insert into gk_public.retention_policies (kind, retention, description)
values ('tuf_metadata', '30 days', 'Superseded TUF metadata versions (never current ones, never root).')
on conflict (kind) do nothing;

-- Down Migration
-- The stored logic of sql/400_tuf.sql built on these tables goes first.
drop view if exists gk_public.tuf_repository_status;
drop function if exists gk_private.retention_prune__tuf_metadata(timestamptz);
drop function if exists gk_private.tuf_resign_sweep();
drop function if exists gk_public.tuf_remove_targets(uuid, text[]);
drop function if exists gk_public.tuf_add_targets(uuid, jsonb);
drop function if exists gk_public.tuf_bin_of(text, int);
drop function if exists gk_private.tg_tuf_targets__mark_bins_dirty() cascade;
drop function if exists gk_private.tuf_mark_bins_dirty(uuid[], bigint[]);
drop function if exists gk_private.tuf_schedule_publish(uuid[]);
drop function if exists gk_private.tuf_blob_key(uuid, text);
delete from gk_public.retention_policies where kind = 'tuf_metadata';
drop table gk_private.tuf_upload_cursors;
drop table gk_public.tuf_metadata;
drop table gk_public.tuf_targets;
drop table gk_public.tuf_roles;
drop table gk_private.tuf_online_keys;
drop table gk_public.tuf_repositories;
drop function gk_private.tuf_valid_hashes(jsonb);
drop function gk_private.tuf_path_hash32(text);
