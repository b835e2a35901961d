-- Lazy regeneration of robots' director metadata (Candlepin's dirty flag). Writers call
-- director_mark_dirty (one statement however many robots); a launch marks nothing, its pending
-- rollout rows make their robots dirty. Readers and the sweep call director_prepare (targets
-- from director_targets), sign in src/rollouts/regenerate.ts and store with director_store,
-- which writes only if nobody changed the robot since it was read.
-- Every function here runs with jit off: their plans over unnest(robot_ids) are estimated
-- high enough to trigger JIT compilation, which cost seconds per batch for milliseconds of work.
-- The read path's functions (director_read, director_prepare, director_targets) also use their
-- generic plans: with custom plans their statements were planned again at every read (~2-3 ms of
-- a dirty read's ~3 ms in the database), and the generic plan is the one wanted anyway (one index
-- probe per robot of the batch, whatever its size).
-- Lock order (deadlock freedom): rollout_robots rows before robot_directors rows, each set in
-- robot_id order — every writer here and in sql/800_rollouts.sql follows it.

-- Marks robots' director metadata dirty, creating the row of a robot that has none: one
-- INSERT … ON CONFLICT, rows taken in robot_id order. generation + 1 tells a regeneration that
-- read the row before this change not to clear the flag.
create or replace function gk_private.director_mark_dirty(robot_ids uuid[]) returns bigint
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_private.director_mark_dirty is 'Marks these robots'' director metadata dirty (generation + 1) in one statement; returns rows marked.';

-- A launch marks no director row: a robot's pending rollout row is itself "newer than its last
-- signing" (pending means: not yet in the robot's signed targets), so a robot's metadata is dirty
-- when its row is dirty or it has a pending rollout row (rollout_robots_one_active_idx finds it).
-- The pending row becomes scheduled (or skipped) only in director_store, in the statement that
-- stores documents listing it. director_schedule did that before signing, which a launch had to
-- pay for by marking 50,000 director rows.
drop function if exists gk_private.director_schedule(uuid[]);

-- (A pending row lists something when one of its robot's ECUs has a hardware id the rollout maps
-- to an image it does not run yet; else signing skips it, nothing to install. That test is written
-- out where it is used, director_targets and director_store: as a function it cost a call per
-- robot, ~40 % of a batch's signing time.)
drop function if exists gk_private.director_rollout_lists(uuid, uuid, uuid);

-- What each robot's director targets must list: per ECU, the image the robot's unfinished
-- (scheduled or accepted, or pending and listing something: what its signing schedules) rollout
-- maps its hardware id to, else the image it reports installed; ECUs with neither are not listed. A robot has at most one unfinished rollout row
-- (rollout_robots_one_active_idx), so this is one index probe per ECU. Pure read.
create or replace function gk_private.director_targets(robot_ids uuid[])
returns table (robot_id uuid, ecu_serial text, hardware_id text, rollout_id uuid, image_name text, image_version text,
               length bigint, sha256 text, sha512 text)
language plpgsql stable security definer
set search_path to pg_catalog, pg_temp
set jit to off
set plan_cache_mode to force_generic_plan
as $$
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
$$;

-- Everything a regeneration needs in one call: per robot its row, whether it is dirty (its flag,
-- or a pending rollout row), that pending row's rollout (director_store schedules it with the
-- documents), its team's director (null: none yet) and the ECU targets it must list, as JSON.
-- A robot without a row gets one. lock_rows (the read path, inside its transaction) locks the
-- pending rollout rows, then the robots' rows, each in robot_id order (the lock order).
do $$
begin
  -- The return type changed (pending_rollout_id): create or replace cannot change it.
  if exists (select 1 from pg_proc p where p.oid = to_regprocedure('gk_private.director_prepare(uuid[], boolean)')
                                       and not ('pending_rollout_id' = any(p.proargnames))) then
    drop function gk_private.director_prepare(uuid[], boolean);
  end if;
end $$;
create or replace function gk_private.director_prepare(robot_ids uuid[], lock_rows boolean)
returns table (robot_id uuid, team_id uuid, dirty boolean, fresh boolean, generation text, pending_rollout_id uuid,
               targets_version int, snapshot_version int, timestamp_version int, now_ms float8, targets text, snapshot text,
               "timestamp" text, root_version int, online_key_id text, targets_s float8, snapshot_s float8,
               timestamp_s float8, ecus jsonb)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
set plan_cache_mode to force_generic_plan
as $$
declare
  have bigint := 0;
begin
  -- Rollout rows are reached per robot (lateral, by rollout_robots_one_active_idx), here and in
  -- director_store: right after a launch the table's statistics predate its pending rows, and a
  -- join planned on them scanned every pending row of the launch for each read. The lateral
  -- probes run in the sorted order of the robots, which is the lock order.
  if lock_rows then
    perform 1 from (select u.id from unnest(robot_ids) u (id) order by u.id) u
      cross join lateral (select 1 from gk_public.rollout_robots rr
                           where rr.robot_id = u.id and rr.state = 'pending' for update of rr) rr;
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
    -- (limit 1: a lateral subquery without it is flattened into a plain join; a robot has at
    -- most one unfinished row, rollout_robots_one_active_idx)
    left join lateral (select rr.rollout_id from gk_public.rollout_robots rr
                        where rr.robot_id = d.robot_id and rr.state = 'pending' limit 1) pr on true
    left join gk_public.robot_director_documents x on x.robot_id = d.robot_id
    left join gk_public.director_repositories p on p.team_id = d.team_id
    left join t on t.robot_id = d.robot_id
   order by d.robot_id;
end;
$$;

-- A robot's read in one call (src/rollouts/regenerate.ts readDirector, inside its transaction):
-- a clean robot (not flagged, no pending rollout row, unexpired documents) gets its stored
-- documents with no lock and no write (clean = true); otherwise director_prepare with lock_rows,
-- so the read signs from what this returns and stores with director_store and COMMIT: two round
-- trips for a dirty read. Null row: the robot is not of that team (or gone).
create or replace function gk_private.director_read(p_robot_id uuid, p_team_id uuid)
returns table (clean boolean, robot_id uuid, team_id uuid, dirty boolean, fresh boolean, generation text, pending_rollout_id uuid,
               targets_version int, snapshot_version int, timestamp_version int, now_ms float8, targets text, snapshot text,
               "timestamp" text, root_version int, online_key_id text, targets_s float8, snapshot_s float8,
               timestamp_s float8, ecus jsonb)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
set plan_cache_mode to force_generic_plan
as $$
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
$$;

-- (Functions called per read are plpgsql, not sql: a non-inlinable sql function — SET clauses
-- prevent inlining — is planned again at every call, which cost more than the query itself.)

-- Stores newly signed documents of robots whose row is still as it was read (generation and
-- timestamp version) and whose pending rollout row read with it is still pending: only then is
-- dirty cleared and that pending row scheduled (or skipped, when it lists nothing), in this same
-- statement, so a pending row always means "not in the stored documents". A robot changed
-- meanwhile (a newer change bumped the generation; its pending row was cancelled, superseded or
-- failed) keeps its flag or its pending row and its old documents, and is signed again. One
-- statement: pending rollout rows, then director rows, each locked in robot_id order (the lock
-- order). Returns the robots it stored.
drop function if exists gk_private.director_store(uuid, bigint, int, int, timestamptz, text, text, text);
drop function if exists gk_private.director_store(uuid[], bigint[], int[], int[], timestamptz[], text[], text[], text[]);
create or replace function gk_private.director_store(
  robot_ids uuid[], generations bigint[], pending_rollout_ids uuid[], read_timestamp_versions int[], root_versions int[],
  expires timestamptz[], targets text[], snapshots text[], timestamps text[]
) returns setof uuid
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
-- (Its one statement is planned once per connection: on custom plans it was planned at every
-- call, 0.6–1.2 ms of a one-robot store. The generic plan probes by key, as the statement is
-- written, for one robot or a batch of 500.)
set plan_cache_mode to force_generic_plan
as $$
begin
  return query
  with s as (
    select * from unnest(robot_ids, generations, pending_rollout_ids, read_timestamp_versions, root_versions, expires, targets,
                         snapshots, timestamps)
      as s (robot_id, generation, pending_rollout_id, read_timestamp_version, root_version, expires, targets, snapshot, timestamp)
  ), pending as (
    -- Per robot (lateral, as director_prepare reaches them), in robot order: the lock order.
    select rr.rollout_id, rr.robot_id, rr.team_id
      from (select s.robot_id, s.pending_rollout_id from s where s.pending_rollout_id is not null order by s.robot_id) s
      cross join lateral (select rr.rollout_id, rr.robot_id, rr.team_id from gk_public.rollout_robots rr
                           where rr.robot_id = s.robot_id and rr.rollout_id = s.pending_rollout_id and rr.state = 'pending'
                             for update of rr) rr
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
$$;

-- The sweep's work list: dirty robots and robots with a pending rollout row (of a launched
-- rollout: the only rollouts with pending rows), oldest change first, at most max_rows. Each
-- branch is an index scan (robot_directors_dirty_idx; rollouts_launched_idx, then
-- rollout_robots_rollout_state_idx). First marks clean robots whose metadata expires within its
-- repository's resign window (the resigner), at most max_rows of them, so expiring metadata is
-- renewed by the same path.
create or replace function gk_private.director_due(max_rows int)
returns table (robot_id uuid, team_id uuid)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
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
$$;

-- Root lifetimes: roots expiring within the window (the sweep re-signs them with the online
-- root key, as version + 1).
create or replace function gk_private.director_roots_due() returns setof uuid
language sql stable security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
  select p.team_id from gk_public.director_repositories p where p.root_expires < now() + p.resign_window order by p.team_id
$$;

-- Every robot of a team dirty (a new root or online key): one statement.
create or replace function gk_private.director_mark_team_dirty(p_team_id uuid) returns bigint
language sql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
  select gk_private.director_mark_dirty(array(select r.id from gk_public.robots r where r.team_id = p_team_id))
$$;

-- The operator's view: how much is waiting to be regenerated, per team.
create or replace view gk_public.director_status as
select p.team_id, t.name as team_name, p.root_version, p.root_expires,
       (select count(*) from gk_public.robot_directors d where d.team_id = p.team_id) as robots,
       (select count(*) from gk_public.robot_directors d
         where d.team_id = p.team_id
           and (d.dirty or exists (select 1 from gk_public.rollout_robots rr where rr.robot_id = d.robot_id and rr.state = 'pending')))
         as dirty_robots,
       least((select min(d.dirty_since) from gk_public.robot_directors d where d.team_id = p.team_id and d.dirty),
             (select min(r.launched_at) from gk_public.rollouts r
               where r.team_id = p.team_id and r.state = 'launched'
                 and exists (select 1 from gk_public.rollout_robots rr where rr.rollout_id = r.id and rr.state = 'pending')))
         as oldest_dirty_since,
       (select min(d.expires) from gk_public.robot_directors d where d.team_id = p.team_id and not d.dirty) as next_expiry
  from gk_public.director_repositories p
  join gk_public.teams t on t.id = p.team_id;
comment on view gk_public.director_status is 'Per team: director root, robots with director metadata, how many are dirty (flagged, or with a pending rollout row) and since when.';

comment on table gk_public.director_roots is E'@behavior -insert -update -delete\nEvery director root version of a team (robots fetch N.root.json).';
comment on table gk_public.robot_directors is E'@behavior -insert -update -delete\nEach robot''s director metadata state: dirty flag, generation, versions, expiry.';
comment on table gk_public.robot_director_documents is E'@behavior -insert -update -delete\nEach robot''s current signed director documents (what it is served).';
comment on table gk_public.director_repositories is E'@behavior -insert -delete\nA team''s Uptane director: root version and expiry, key ids, lifetimes of each robot''s metadata.';
grant update (targets_lifetime, snapshot_lifetime, timestamp_lifetime, root_lifetime, resign_window)
  on gk_public.director_repositories to gk_admin;
