-- Up Migration
-- Volumes on build workers and everything that owns them. Ownership is a set of nullable
-- references, each ON DELETE SET NULL: a volume whose every owner is gone and that has no
-- copy-on-write child is an orphan, and the collector destroys it (sql/501_volumes.sql). The
-- platform deletes owners with plain SQL; the database works out what became garbage.

create table gk_public.builds (
  id bigint generated always as identity primary key,
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null default '' check (length(name) <= 200),
  status text not null default 'running' check (status in ('running', 'succeeded', 'failed', 'errored', 'aborted')),
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  check ((status = 'running') = (completed_at is null))
);
create index builds_team_id_idx on gk_public.builds (team_id);
create index builds_running_idx on gk_public.builds (id) where status = 'running';
comment on table gk_public.builds is 'A build of the platform; its containers and cache uses hang off it.';

create table gk_public.containers (
  id bigint generated always as identity primary key,
  handle uuid not null unique default gen_random_uuid(),
  worker_id uuid not null references gk_public.workers (id) on delete cascade,
  team_id uuid references gk_public.teams (id) on delete set null,
  -- The owner: a deleted build leaves the container ownerless (the collector removes it).
  build_id bigint references gk_public.builds (id) on delete set null,
  created_at timestamptz not null default now()
);
create index containers_worker_id_idx on gk_public.containers (worker_id);
create index containers_build_id_idx on gk_public.containers (build_id);
create index containers_team_id_idx on gk_public.containers (team_id);
create index containers_ownerless_idx on gk_public.containers (id) where build_id is null;
comment on table gk_public.containers is 'A container on a worker; owns the volumes mounted into it.';

create table gk_public.base_resource_types (
  id bigint generated always as identity primary key,
  name text not null unique check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$')
);
comment on table gk_public.base_resource_types is 'Resource types workers bring built in (git, s3, registry-image...).';

create table gk_public.worker_base_resource_types (
  id bigint generated always as identity primary key,
  worker_id uuid not null references gk_public.workers (id) on delete cascade,
  base_resource_type_id bigint not null references gk_public.base_resource_types (id) on delete cascade,
  version text not null default '' check (length(version) <= 200),
  unique (worker_id, base_resource_type_id)
);
create index worker_base_resource_types_type_idx on gk_public.worker_base_resource_types (base_resource_type_id);
comment on table gk_public.worker_base_resource_types is 'A base resource type at one version on one worker; replacing the row (a new version) orphans its image volume.';

create table gk_public.resource_configs (
  id bigint generated always as identity primary key,
  base_resource_type_id bigint not null references gk_public.base_resource_types (id) on delete cascade,
  source_hash text not null check (length(source_hash) between 1 and 128),
  unique (base_resource_type_id, source_hash)
);
comment on table gk_public.resource_configs is 'A resource type plus its source configuration.';

create table gk_public.resource_caches (
  id bigint generated always as identity primary key,
  -- RESTRICT: a config cannot go while caches of it exist.
  resource_config_id bigint not null references gk_public.resource_configs (id) on delete restrict,
  version_digest text not null check (length(version_digest) between 1 and 128),
  params_hash text not null default '' check (length(params_hash) <= 128),
  created_at timestamptz not null default now(),
  unique (resource_config_id, version_digest, params_hash)
);
comment on table gk_public.resource_caches is 'One fetched version of a resource config. Deleting it orphans its cache volumes on every worker.';

create table gk_public.resource_cache_uses (
  id bigint generated always as identity primary key,
  -- RESTRICT pins the cache while a build uses it; the use goes with its build.
  resource_cache_id bigint not null references gk_public.resource_caches (id) on delete restrict,
  build_id bigint not null references gk_public.builds (id) on delete cascade,
  unique (resource_cache_id, build_id)
);
create index resource_cache_uses_build_id_idx on gk_public.resource_cache_uses (build_id);
comment on table gk_public.resource_cache_uses is 'A build using a resource cache: while it exists the cache cannot be deleted.';

create table gk_public.worker_resource_caches (
  id bigint generated always as identity primary key,
  worker_id uuid not null references gk_public.workers (id) on delete cascade,
  resource_cache_id bigint not null references gk_public.resource_caches (id) on delete cascade,
  worker_base_resource_type_id bigint references gk_public.worker_base_resource_types (id) on delete set null,
  unique (worker_id, resource_cache_id)
);
create index worker_resource_caches_cache_idx on gk_public.worker_resource_caches (resource_cache_id);
create index worker_resource_caches_wbrt_idx on gk_public.worker_resource_caches (worker_base_resource_type_id);
comment on table gk_public.worker_resource_caches is 'A resource cache present on one worker (its volume points here).';

create table gk_public.worker_task_caches (
  id bigint generated always as identity primary key,
  worker_id uuid not null references gk_public.workers (id) on delete cascade,
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (length(name) between 1 and 500),
  unique (worker_id, team_id, name)
);
create index worker_task_caches_team_id_idx on gk_public.worker_task_caches (team_id);
comment on table gk_public.worker_task_caches is 'A task''s cache directory on one worker.';

create table gk_public.volumes (
  id bigint generated always as identity primary key,
  -- The agent's name for it; chosen here, before the agent is asked to create it.
  handle uuid not null default gen_random_uuid(),
  worker_id uuid not null references gk_public.workers (id) on delete cascade,
  team_id uuid references gk_public.teams (id) on delete set null,
  -- creating: row first, then the agent; created: on the agent; destroying: in the bin until the
  -- agent confirms (or stops reporting it); failed: creation failed, destroyed after a grace period.
  state text not null default 'creating' check (state in ('creating', 'created', 'destroying', 'failed')),
  -- Owners, every one ON DELETE SET NULL. All NULL and no child = orphan.
  container_id bigint references gk_public.containers (id) on delete set null,
  worker_resource_cache_id bigint references gk_public.worker_resource_caches (id) on delete set null,
  worker_base_resource_type_id bigint references gk_public.worker_base_resource_types (id) on delete set null,
  worker_task_cache_id bigint references gk_public.worker_task_caches (id) on delete set null,
  -- Copy-on-write parent. A child is inserted with parent_state = 'created' and references the
  -- parent's (id, state, worker): it cannot be created under a parent that is not created (or on
  -- another worker), and a parent with a child can neither change state nor be deleted. The
  -- collector's orphan test excludes parents, so the key is the backstop for races. ON UPDATE
  -- RESTRICT (not NO ACTION): the same refusal with one check query per changed row instead of
  -- two; ON DELETE NO ACTION lets a parent and its children go in one statement.
  parent_id bigint,
  parent_state text check (parent_state = 'created'),
  created_at timestamptz not null default now(),
  state_changed_at timestamptz not null default now(),
  -- Set when a report from the agent lacks it (never for creating rows); cleared when reported.
  missing_since timestamptz,
  -- Found on the agent without a row: adopted as destroying so it gets removed.
  adopted boolean not null default false,
  -- Pending destroy: attempts, last error, due time (a lease while a collector works on it).
  attempts int not null default 0 check (attempts >= 0),
  last_error text check (length(last_error) <= 2000),
  next_attempt_at timestamptz,
  retry_requested_at timestamptz,
  constraint volumes_id_state_worker_key unique (id, state, worker_id),
  constraint volumes_worker_handle_key unique (worker_id, handle),
  constraint volumes_parent_fkey foreign key (parent_id, parent_state, worker_id)
    references gk_public.volumes (id, state, worker_id) on delete no action on update restrict,
  constraint volumes_parent_pair check ((parent_id is null) = (parent_state is null)),
  constraint volumes_not_own_parent check (parent_id <> id),
  constraint volumes_missing_not_creating check (state <> 'creating' or missing_since is null),
  constraint volumes_adopted_destroying check (not adopted or state = 'destroying'),
  constraint volumes_destroying_due check ((state = 'destroying') = (next_attempt_at is not null))
);
-- The orphan mark: created volumes without any owner, per worker (small once collected).
create index volumes_ownerless_idx on gk_public.volumes (worker_id)
  where state = 'created' and container_id is null and worker_resource_cache_id is null
    and worker_base_resource_type_id is null and worker_task_cache_id is null;
-- "Has a child" anti-joins and descendant walks.
create index volumes_parent_id_idx on gk_public.volumes (parent_id) where parent_id is not null;
-- Destroys due per worker (the collector's claim) and the bin.
create index volumes_destroying_due_idx on gk_public.volumes (worker_id, next_attempt_at) where state = 'destroying';
-- Stuck creations and failed volumes past their grace period.
create index volumes_creating_idx on gk_public.volumes (worker_id, state_changed_at) where state = 'creating';
create index volumes_failed_idx on gk_public.volumes (state_changed_at) where state = 'failed';
create index volumes_missing_idx on gk_public.volumes (missing_since) where missing_since is not null;
-- FK actions (SET NULL when an owner goes) look volumes up by owner. Partial: an orphan's
-- state changes (mark, claims) then touch none of them.
create index volumes_container_id_idx on gk_public.volumes (container_id) where container_id is not null;
create index volumes_worker_resource_cache_id_idx on gk_public.volumes (worker_resource_cache_id) where worker_resource_cache_id is not null;
create index volumes_worker_base_resource_type_id_idx on gk_public.volumes (worker_base_resource_type_id) where worker_base_resource_type_id is not null;
create index volumes_worker_task_cache_id_idx on gk_public.volumes (worker_task_cache_id) where worker_task_cache_id is not null;
create index volumes_team_id_idx on gk_public.volumes (team_id) where team_id is not null;
comment on table gk_public.volumes is 'Volumes on workers. A volume without owners and children is destroyed on its agent, then its row goes.';

-- Down Migration
do $$
declare
  f regprocedure;
begin
  -- Stored logic of this area (sql/501_volumes.sql) goes with its tables.
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private') and (p.proname like 'volume%' or p.proname like 'tg_volumes%'
                  or p.proname like 'containers%' or p.proname like 'tg_containers%')
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
drop table gk_public.volumes cascade;
drop table gk_public.worker_task_caches cascade;
drop table gk_public.worker_resource_caches cascade;
drop table gk_public.resource_cache_uses cascade;
drop table gk_public.resource_caches cascade;
drop table gk_public.resource_configs cascade;
drop table gk_public.worker_base_resource_types cascade;
drop table gk_public.base_resource_types cascade;
drop table gk_public.containers cascade;
drop table gk_public.builds cascade;
