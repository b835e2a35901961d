-- Up Migration
-- Rollouts (DESIGN §4.6): robots' ECUs, robot groups, and rollouts that map hardware ids to a
-- team's images. Every table carries team_id and every reference between tenant rows is a
-- composite (team_id, id) foreign key, so a rollout can only ever reach robots, groups and
-- images of its own team — the database refuses the rest (Airbotics targeted without a team
-- filter). Stored logic: sql/800_rollouts.sql.

-- Targets of the composite keys (a unique index is enough for a foreign key to reference).
create unique index if not exists robots_team_id_id_idx on gk_public.robots (team_id, id);
create unique index if not exists images_team_id_id_idx on gk_public.images (team_id, id);

-- What an ECU (or a robot, per ECU) last reported through its events.
create function gk_private.rollouts_valid_ecu_status(s text) returns boolean
language sql immutable strict parallel safe
as $$ select s in ('download_started', 'download_completed', 'download_failed',
                   'installation_started', 'installation_completed', 'installation_failed') $$;

create table gk_public.ecus (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null,
  robot_id uuid not null,
  -- The ECU serial (Uptane's ECU identifier): what director targets name in custom.
  serial text not null check (serial ~ '^[[:graph:]]{1,64}$'),
  hardware_id text not null check (hardware_id ~ '^[[:graph:]]{1,100}$'),
  is_primary boolean not null default false,
  -- The image the ECU reports installed (set by its installation_completed event).
  installed_image_id uuid,
  status text check (gk_private.rollouts_valid_ecu_status(status)),
  status_at timestamptz,
  created_at timestamptz not null default now(),
  unique (robot_id, serial),
  unique (team_id, id),
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade,
  foreign key (team_id, installed_image_id) references gk_public.images (team_id, id) on delete set null (installed_image_id)
);
create index ecus_team_hardware_idx on gk_public.ecus (team_id, hardware_id);
create index ecus_installed_image_idx on gk_public.ecus (installed_image_id) where installed_image_id is not null;
create unique index ecus_one_primary_idx on gk_public.ecus (robot_id) where is_primary;
comment on table gk_public.ecus is 'Electronic control units of a robot: serial, hardware id, the image it reports installed.';

create table gk_public.robot_groups (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
  created_at timestamptz not null default now(),
  unique (team_id, name),
  unique (team_id, id)
);
comment on table gk_public.robot_groups is 'A named set of a team''s robots, a rollout target.';

create table gk_public.robot_group_members (
  team_id uuid not null,
  group_id uuid not null,
  robot_id uuid not null,
  added_at timestamptz not null default now(),
  primary key (group_id, robot_id),
  foreign key (team_id, group_id) references gk_public.robot_groups (team_id, id) on delete cascade,
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade
);
create index robot_group_members_robot_idx on gk_public.robot_group_members (robot_id);
comment on table gk_public.robot_group_members is 'Membership of robots in groups (both of one team).';

create table gk_public.rollouts (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  target_type text not null check (target_type in ('group', 'hardware_id_match', 'selected_robots')),
  -- The group of a 'group' rollout; a group deleted before launch leaves nothing to launch.
  group_id uuid,
  state text not null default 'prepared' check (state in ('prepared', 'launched', 'completed', 'cancelled', 'failed')),
  -- The rollout fails once more robots than this have failed (null: it never fails, it
  -- completes with failures).
  max_failed_robots int check (max_failed_robots >= 0),
  -- A robot that has not finished this long after the launch has failed (reason: no report),
  -- so a rollout always ends.
  robot_deadline interval not null default '14 days' check (robot_deadline between interval '1 minute' and interval '365 days'),
  -- Why it ended: counts of a completion, the reason of a failure or a cancel.
  result text check (length(result) <= 2000),
  created_at timestamptz not null default now(),
  launched_at timestamptz,
  ended_at timestamptz,
  unique (team_id, id),
  foreign key (team_id, group_id) references gk_public.robot_groups (team_id, id) on delete set null (group_id),
  check (target_type = 'group' or group_id is null),
  check ((state = 'prepared') = (launched_at is null) or state = 'cancelled'),
  check ((state in ('completed', 'cancelled', 'failed')) = (ended_at is not null))
);
create index rollouts_team_idx on gk_public.rollouts (team_id, created_at desc);
-- The processor's sweep.
create index rollouts_launched_idx on gk_public.rollouts (launched_at) where state = 'launched';
create index rollouts_group_idx on gk_public.rollouts (group_id) where group_id is not null;
comment on table gk_public.rollouts is 'An update of a team''s robots: target (group, hardware id match, selected robots), images per hardware id, state prepared → launched → completed / cancelled / failed.';

-- Hardware id → image: what an ECU of that hardware id must install.
create table gk_public.rollout_images (
  team_id uuid not null,
  rollout_id uuid not null,
  hardware_id text not null check (hardware_id ~ '^[[:graph:]]{1,100}$'),
  image_id uuid not null,
  primary key (rollout_id, hardware_id),
  foreign key (team_id, rollout_id) references gk_public.rollouts (team_id, id) on delete cascade,
  -- NO ACTION (checked at the end of the statement): an image a rollout installs cannot be
  -- deleted, while a team delete, which takes both, goes through.
  foreign key (team_id, image_id) references gk_public.images (team_id, id) on delete no action
);
create index rollout_images_image_idx on gk_public.rollout_images (image_id);

-- The robots a 'selected_robots' rollout targets.
create table gk_public.rollout_selected_robots (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  primary key (rollout_id, robot_id),
  foreign key (team_id, rollout_id) references gk_public.rollouts (team_id, id) on delete cascade,
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade
);
create index rollout_selected_robots_robot_idx on gk_public.rollout_selected_robots (robot_id);

-- One row per robot a launched rollout reached. pending: not yet in the robot's signed
-- director targets; scheduled: listed there; accepted: the robot reported a first event;
-- then completed / failed / skipped (nothing to install, or superseded) / cancelled.
create table gk_public.rollout_robots (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  state text not null default 'pending'
    check (state in ('pending', 'scheduled', 'accepted', 'completed', 'failed', 'skipped', 'cancelled')),
  result text check (length(result) <= 2000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (rollout_id, robot_id),
  foreign key (team_id, rollout_id) references gk_public.rollouts (team_id, id) on delete cascade,
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade,
  check (state in ('pending', 'scheduled', 'accepted') or result is not null)
);
-- A robot is in at most one unfinished rollout: a newer launch supersedes the older row
-- (sql/800_rollouts.sql, rollouts_launch).
create unique index rollout_robots_one_active_idx on gk_public.rollout_robots (robot_id)
  where state in ('pending', 'scheduled', 'accepted');
create index rollout_robots_rollout_state_idx on gk_public.rollout_robots (rollout_id, state);
comment on table gk_public.rollout_robots is 'Each robot of a launched rollout: pending → scheduled → accepted → completed / failed / skipped / cancelled, with a result.';

-- Per ECU of a scheduled robot: the image its director targets list, and the ECU's last status.
create table gk_public.rollout_robot_ecus (
  team_id uuid not null,
  rollout_id uuid not null,
  robot_id uuid not null,
  ecu_id uuid not null,
  image_id uuid not null,
  status text check (gk_private.rollouts_valid_ecu_status(status)),
  updated_at timestamptz not null default now(),
  primary key (rollout_id, ecu_id),
  foreign key (rollout_id, robot_id) references gk_public.rollout_robots (rollout_id, robot_id) on delete cascade,
  -- image_id is the rollout_images row's image (director_schedule copies it), which holds the
  -- image's foreign key: none here, one check less per scheduled ECU.
  foreign key (team_id, ecu_id) references gk_public.ecus (team_id, id) on delete cascade
);
-- A robot row's ECUs (scheduling, events, the cascade from rollout_robots).
create index rollout_robot_ecus_robot_idx on gk_public.rollout_robot_ecus (rollout_id, robot_id);
create index rollout_robot_ecus_ecu_idx on gk_public.rollout_robot_ecus (ecu_id);

-- ECU events as robots report them; (robot_id, event_id) is unique, so a repeated event is
-- recognised and changes nothing.
create table gk_public.rollout_events (
  id bigint generated always as identity primary key,
  team_id uuid not null,
  robot_id uuid not null,
  event_id uuid not null,
  ecu_id uuid not null,
  rollout_id uuid,
  type text not null check (gk_private.rollouts_valid_ecu_status(type)),
  description text check (length(description) <= 2000),
  received_at timestamptz not null default now(),
  unique (robot_id, event_id),
  foreign key (team_id, robot_id) references gk_public.robots (team_id, id) on delete cascade,
  foreign key (team_id, ecu_id) references gk_public.ecus (team_id, id) on delete cascade,
  foreign key (team_id, rollout_id) references gk_public.rollouts (team_id, id) on delete set null (rollout_id)
);
create index rollout_events_ecu_idx on gk_public.rollout_events (ecu_id);
create index rollout_events_rollout_idx on gk_public.rollout_events (rollout_id) where rollout_id is not null;
create index rollout_events_received_idx on gk_public.rollout_events (received_at);

insert into gk_public.retention_policies (kind, retention, description)
values ('rollout_events', interval '90 days', 'ECU events reported by robots (their effect on rollouts stays).')
on conflict (kind) do nothing;

-- Down Migration
do $$
declare
  f regprocedure;
begin
  -- Stored logic of this area (sql/6xx director regeneration, sql/8xx rollouts) goes with its tables.
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private')
              and (p.proname like 'rollout%' or p.proname like 'tg_rollout%' or p.proname like 'ecus%'
                   or p.proname like 'tg_ecus%' or p.proname like 'robot_group%' or p.proname like 'director%'
                   or p.proname like 'tg_director%')
              and p.proname <> 'rollouts_valid_ecu_status'
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
drop view if exists gk_public.rollout_summaries;
delete from gk_public.retention_policies where kind = 'rollout_events';
drop table gk_public.rollout_events;
drop table gk_public.rollout_robot_ecus;
drop table gk_public.rollout_robots;
drop table gk_public.rollout_selected_robots;
drop table gk_public.rollout_images;
drop table gk_public.rollouts;
drop table gk_public.robot_group_members;
drop table gk_public.robot_groups;
drop table gk_public.ecus;
drop function gk_private.rollouts_valid_ecu_status(text);
drop index if exists gk_public.images_team_id_id_idx;
drop index if exists gk_public.robots_team_id_id_idx;
