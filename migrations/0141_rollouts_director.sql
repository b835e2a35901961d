-- Up Migration
-- Uptane director metadata per robot, regenerated lazily (Candlepin's dirty flag, DESIGN §4.6).
-- A team has one director root (its own keys, not the image repository's); each robot has its
-- own targets, snapshot and timestamp, signed with the team's director online key. Writers
-- never sign: they mark robot_directors dirty in one statement and bump `generation`; the
-- robot's next read, or the sweep, signs. Stored logic: sql/600_rollouts_director.sql.

create table gk_public.director_repositories (
  team_id uuid primary key references gk_public.teams (id) on delete cascade,
  root_version int not null default 1 check (root_version >= 1),
  root_expires timestamptz not null,
  root_key_id text not null check (root_key_id ~ '^[0-9a-f]{64}$'),
  online_key_id text not null check (online_key_id ~ '^[0-9a-f]{64}$'),
  targets_lifetime interval not null default '1 day',
  snapshot_lifetime interval not null default '1 day',
  timestamp_lifetime interval not null default '1 day',
  root_lifetime interval not null default '365 days',
  -- Metadata expiring within this window is re-signed by the sweep (rollouts__regenerate).
  resign_window interval not null default '3 hours',
  created_at timestamptz not null default now(),
  check (resign_window > interval '0'
         and resign_window < least(targets_lifetime, snapshot_lifetime, timestamp_lifetime, root_lifetime))
);
comment on table gk_public.director_repositories is 'A team''s Uptane director: root version and expiry, key ids, lifetimes of each robot''s metadata.';

-- The director's private keys (root and online), sealed with SecretBox under the master key.
create table gk_private.director_keys (
  team_id uuid not null references gk_public.director_repositories (team_id) on delete cascade,
  key_id text not null check (key_id ~ '^[0-9a-f]{64}$'),
  role text not null check (role in ('root', 'online')),
  sealed_private_key text not null check (sealed_private_key like 'v1:%'),
  created_at timestamptz not null default now(),
  primary key (team_id, key_id)
);

-- Every director root version: robots walk the chain N.root.json → N+1.root.json.
create table gk_public.director_roots (
  team_id uuid not null references gk_public.director_repositories (team_id) on delete cascade,
  version int not null check (version >= 1),
  expires timestamptz not null,
  document text not null,
  created_at timestamptz not null default now(),
  primary key (team_id, version)
);

-- A robot's current director metadata. dirty: what it must contain changed since it was
-- signed; generation: bumped by every such change, so a regeneration that read generation g
-- clears dirty only if it is still g (a newer change keeps the flag).
create table gk_public.robot_directors (
  robot_id uuid primary key,
  team_id uuid not null,
  dirty boolean not null default true,
  dirty_since timestamptz default now(),
  generation bigint not null default 1,
  -- The generation the stored documents were signed from (0: never signed).
  signed_generation bigint not null default 0,
  root_version int,
  targets_version int not null default 0,
  snapshot_version int not null default 0,
  timestamp_version int not null default 0,
  -- The soonest expiry of the three documents (the resign sweep's key).
  expires timestamptz,
  targets_document text,
  snapshot_document text,
  timestamp_document text,
  signed_at timestamptz,
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade,
  check (dirty = (dirty_since is not null)),
  check (signed_generation <= generation),
  check ((signed_generation = 0) = (timestamp_document is null)),
  check ((timestamp_document is null) = (expires is null))
);
-- The sweep: dirty robots, oldest first.
create index robot_directors_dirty_idx on gk_public.robot_directors (dirty_since) where dirty;
-- The resigner: clean robots by expiry.
create index robot_directors_expires_idx on gk_public.robot_directors (expires) where not dirty;
create index robot_directors_team_idx on gk_public.robot_directors (team_id);
comment on table gk_public.robot_directors is 'Each robot''s director metadata (targets, snapshot, timestamp) with its dirty flag and generation.';

-- Down Migration
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private') and (p.proname like 'director%' or p.proname like 'tg_director%'
                  or p.proname like 'robot_director%')
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
drop view if exists gk_public.director_status;
drop table gk_public.robot_directors;
drop table gk_public.director_roots;
drop table gk_private.director_keys;
drop table gk_public.director_repositories;
