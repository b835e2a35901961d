-- Lazy regeneration of robots' director metadata (Candlepin's dirty flag). Writers call
-- director_mark_dirty (one statement however many robots); readers and the sweep call
-- director_schedule, then director_targets, sign in src/rollouts/regenerate.ts and store with
-- director_store, which writes only if nobody changed the robot since it was read.
-- Lock order (deadlock freedom): rollout_robots rows before robot_directors rows, each set in
-- robot_id order — every writer here and in sql/800_rollouts.sql follows it.

-- Marks robots' director metadata dirty, creating the row of a robot that has none: one
-- INSERT … ON CONFLICT, rows taken in robot_id order. generation + 1 tells a regeneration that
-- read the row before this change not to clear the flag.
create or replace function gk_private.director_mark_dirty(robot_ids uuid[]) returns bigint
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  n bigint;
begin
  if robot_ids is null or cardinality(robot_ids) = 0 then
    return 0;
  end if;
  insert into gk_public.robot_directors as d (robot_id, team_id)
  select r.id, r.team_id
    from gk_public.robots r
   where r.id = any(robot_ids)
   order by r.id
  on conflict (robot_id) do update
     set dirty = true, dirty_since = coalesce(d.dirty_since, now()), generation = d.generation + 1;
  get diagnostics n = row_count;
  -- The sweep comes by soon for robots that do not read their metadata first.
  perform gk_private.enqueue('rollouts__regenerate', '{}'::jsonb, job_key := 'rollouts__regenerate',
                             run_at := now() + interval '1 second', queue_name := 'rollouts__regenerate',
                             job_key_mode := 'preserve_run_at');
  return n;
end;
$$;
comment on function gk_private.director_mark_dirty is 'Marks these robots'' director metadata dirty (generation + 1) in one statement; returns rows marked.';

-- Before signing: every pending rollout row of these robots becomes scheduled, with the ECUs
-- its director targets will list (those whose hardware id the rollout maps to an image they do
-- not run yet), or skipped when there is none. Returns the robots it changed.
create or replace function gk_private.director_schedule(robot_ids uuid[]) returns setof uuid
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
begin
  perform 1 from gk_public.rollout_robots rr
   where rr.robot_id = any(robot_ids) and rr.state = 'pending'
   order by rr.robot_id
     for update;

  insert into gk_public.rollout_robot_ecus (team_id, rollout_id, robot_id, ecu_id, image_id)
  select rr.team_id, rr.rollout_id, rr.robot_id, e.id, ri.image_id
    from gk_public.rollout_robots rr
    join gk_public.ecus e on e.robot_id = rr.robot_id and e.team_id = rr.team_id
    join gk_public.rollout_images ri on ri.rollout_id = rr.rollout_id and ri.team_id = rr.team_id and ri.hardware_id = e.hardware_id
   where rr.robot_id = any(robot_ids) and rr.state = 'pending'
     and e.installed_image_id is distinct from ri.image_id
  on conflict do nothing;

  return query
  update gk_public.rollout_robots rr
     set state = case when exists (select 1 from gk_public.rollout_robot_ecus x
                                    where x.rollout_id = rr.rollout_id and x.robot_id = rr.robot_id)
                      then 'scheduled' else 'skipped' end,
         result = case when exists (select 1 from gk_public.rollout_robot_ecus x
                                     where x.rollout_id = rr.rollout_id and x.robot_id = rr.robot_id)
                       then null else 'nothing to install: no ECU of a mapped hardware id needs a new image' end,
         updated_at = now()
   where rr.robot_id = any(robot_ids) and rr.state = 'pending'
  returning rr.robot_id;
end;
$$;

-- What each robot's director targets must list: per ECU, the image of its rollout row that is
-- scheduled, accepted or completed (the newest), else the image it reports installed; ECUs
-- with neither are not listed. Pure read.
create or replace function gk_private.director_targets(robot_ids uuid[])
returns table (robot_id uuid, ecu_serial text, hardware_id text, rollout_id uuid, image_name text, image_version text,
               length bigint, sha256 text, sha512 text)
language sql stable security definer
set search_path to pg_catalog, pg_temp
as $$
  select e.robot_id, e.serial, e.hardware_id, w.rollout_id, i.name, i.version, i.length, i.sha256, i.sha512
    from gk_public.ecus e
    left join lateral (
      select x.image_id, x.rollout_id
        from gk_public.rollout_robot_ecus x
        join gk_public.rollout_robots rr on rr.rollout_id = x.rollout_id and rr.robot_id = x.robot_id
       where x.ecu_id = e.id and rr.state in ('scheduled', 'accepted', 'completed')
       order by rr.created_at desc
       limit 1) w on true
    join gk_public.images i on i.id = coalesce(w.image_id, e.installed_image_id) and i.team_id = e.team_id
   where e.robot_id = any(robot_ids)
   order by e.robot_id, e.serial
$$;

-- Stores a robot's newly signed documents if its row is still as it was read (generation and
-- timestamp version): dirty is cleared only then. Returns whether it stored.
create or replace function gk_private.director_store(
  p_robot_id uuid, p_generation bigint, p_read_timestamp_version int, p_root_version int, p_expires timestamptz,
  p_targets text, p_snapshot text, p_timestamp text
) returns boolean
language sql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
  with stored as (
    update gk_public.robot_directors d
       set dirty = false, dirty_since = null, signed_generation = p_generation, root_version = p_root_version,
           targets_version = d.targets_version + 1, snapshot_version = d.snapshot_version + 1,
           timestamp_version = d.timestamp_version + 1, expires = p_expires,
           targets_document = p_targets, snapshot_document = p_snapshot, timestamp_document = p_timestamp,
           signed_at = now()
     where d.robot_id = p_robot_id and d.generation = p_generation and d.timestamp_version = p_read_timestamp_version
    returning 1)
  select exists (select 1 from stored)
$$;

-- The sweep's work list: dirty robots, oldest change first, at most max_rows. First marks
-- clean robots whose metadata expires within its repository's resign window (the resigner),
-- at most max_rows of them, so expiring metadata is renewed by the same path.
create or replace function gk_private.director_due(max_rows int)
returns table (robot_id uuid, team_id uuid)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
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
  select d.robot_id, d.team_id
    from gk_public.robot_directors d
   where d.dirty
   order by d.dirty_since, d.robot_id
   limit max_rows;
end;
$$;

-- Root lifetimes: roots expiring within the window (the sweep re-signs them with the online
-- root key, as version + 1).
create or replace function gk_private.director_roots_due() returns setof uuid
language sql stable security definer
set search_path to pg_catalog, pg_temp
as $$
  select p.team_id from gk_public.director_repositories p where p.root_expires < now() + p.resign_window order by p.team_id
$$;

-- Every robot of a team dirty (a new root or online key): one statement.
create or replace function gk_private.director_mark_team_dirty(p_team_id uuid) returns bigint
language sql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
  select gk_private.director_mark_dirty(array(select r.id from gk_public.robots r where r.team_id = p_team_id))
$$;

-- The operator's view: how much is waiting to be regenerated, per team.
create or replace view gk_public.director_status as
select p.team_id, t.name as team_name, p.root_version, p.root_expires,
       (select count(*) from gk_public.robot_directors d where d.team_id = p.team_id) as robots,
       (select count(*) from gk_public.robot_directors d where d.team_id = p.team_id and d.dirty) as dirty_robots,
       (select min(d.dirty_since) from gk_public.robot_directors d where d.team_id = p.team_id and d.dirty) as oldest_dirty_since,
       (select min(d.expires) from gk_public.robot_directors d where d.team_id = p.team_id and not d.dirty) as next_expiry
  from gk_public.director_repositories p
  join gk_public.teams t on t.id = p.team_id;
comment on view gk_public.director_status is 'Per team: director root, robots with director metadata, how many are dirty and since when.';

comment on table gk_public.director_roots is E'@behavior -insert -update -delete\nEvery director root version of a team (robots fetch N.root.json).';
comment on table gk_public.robot_directors is E'@behavior -insert -update -delete\nEach robot''s director metadata (targets, snapshot, timestamp) with its dirty flag and generation.';
comment on table gk_public.director_repositories is E'@behavior -insert -delete\nA team''s Uptane director: root version and expiry, key ids, lifetimes of each robot''s metadata.';
grant update (targets_lifetime, snapshot_lifetime, timestamp_lifetime, root_lifetime, resign_window)
  on gk_public.director_repositories to gk_admin;
