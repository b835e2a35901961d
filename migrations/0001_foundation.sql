-- Up Migration
-- Schemas: gk_public is exposed through GraphQL; gk_private holds secrets and internals.
create schema gk_public;
create schema gk_private;

-- Nologin roles the admin API switches to (per bearer token). Roles are cluster-wide, so
-- they may already exist from another database on the same server.
do $$
begin
  -- Tolerate a concurrent migration of another database on the same server creating them.
  begin
    create role gk_viewer nologin;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role gk_admin nologin;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    execute format('grant gk_viewer, gk_admin to %I', current_user);
  exception when others then
    if not (pg_has_role(current_user, 'gk_admin', 'member') and pg_has_role(current_user, 'gk_viewer', 'member')) then
      raise;
    end if;
  end;
end $$;

-- Bookkeeping for the stored logic in sql/ (re-applied by checksum on every migrate).
create table gk_private.stored_logic (
  file text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);

create table gk_public.teams (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  created_at timestamptz not null default now()
);
comment on table gk_public.teams is 'A tenant of the platform. Deleting a team cascades to its robots and sends its certificates and blobs to the bin.';

create table gk_public.robots (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now(),
  unique (team_id, name)
);
create index robots_team_id_idx on gk_public.robots (team_id);
comment on table gk_public.robots is 'A device of a team''s fleet.';

-- Bearer tokens for the admin API; only a sha256 of each token is kept.
create table gk_private.api_tokens (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  role text not null check (role in ('gk_admin', 'gk_viewer')),
  token_sha256 bytea not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);

-- One row per activation of a periodic reconciler: what it did, and what failed.
create table gk_public.activations (
  id bigint generated always as identity primary key,
  task text not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  status text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
  counts jsonb not null default '{}'::jsonb,
  error text,
  check ((status = 'running') = (finished_at is null))
);
create index activations_task_started_idx on gk_public.activations (task, started_at desc);
comment on table gk_public.activations is 'History of periodic reconciler runs (expiry sweep, retention, resigner, GC...), with per-activation counts.';

create table gk_public.activation_errors (
  id bigint generated always as identity primary key,
  activation_id bigint not null references gk_public.activations (id) on delete cascade,
  item text not null,
  error text not null,
  at timestamptz not null default now()
);
create index activation_errors_activation_idx on gk_public.activation_errors (activation_id);
comment on table gk_public.activation_errors is 'Per-item errors of an activation: the item that failed and why.';

-- Retention: one row per kind of history that is deleted once older than its period.
-- The retention sweep calls gk_private.retention_prune__<kind>(cutoff timestamptz) returns bigint
-- for each row (one function per kind, defined by the part of the schema that owns the data).
create table gk_public.retention_policies (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]{0,40}$'),
  retention interval not null check (retention > interval '0'),
  description text not null default ''
);
comment on table gk_public.retention_policies is 'How long each kind of history (manifests, telemetry, non-current TUF metadata...) is kept.';

-- Down Migration
drop table gk_public.retention_policies;
drop table gk_public.activation_errors;
drop table gk_public.activations;
drop table gk_private.api_tokens;
drop table gk_public.robots;
drop table gk_public.teams;
drop table gk_private.stored_logic;
drop schema gk_private cascade;
drop schema gk_public cascade;
