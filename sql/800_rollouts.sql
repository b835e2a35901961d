-- Rollouts: create, launch, cancel (admin API), ECU events (robot API), the processor that ends
-- rollouts (rollouts__process), and the triggers that mark robots' director metadata dirty
-- when what it must list changes (sql/600_rollouts_director.sql). Launches and cancels of a
-- team take the team's advisory lock, so two launches never race for the same robots.
-- Lock order: rollouts row, then rollout_robots rows (robot_id order), then robot_directors.

create or replace function gk_private.rollouts_team_lock(p_team_id uuid) returns void
language sql volatile
as $$ select pg_advisory_xact_lock(hashtextextended('rollouts:' || p_team_id::text, 0)) $$;

-- Ask the processor to come by soon (it also runs every minute): a robot finished.
create or replace function gk_private.rollouts_schedule_processing() returns void
language sql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
  select gk_private.enqueue('rollouts__process', '{}'::jsonb, job_key := 'rollouts__process',
                            run_at := now() + interval '1 second', queue_name := 'rollouts__process',
                            job_key_mode := 'preserve_run_at')
$$;

-- ---------------------------------------------------------------------------------------------
-- Invariants.

-- An image mapped to a hardware id must be installable on it.
create or replace function gk_private.tg_rollout_images__check_hardware() returns trigger
language plpgsql volatile
set search_path to pg_catalog, pg_temp
set jit to off
as $$
begin
  if not exists (select 1 from gk_public.images i where i.id = new.image_id and new.hardware_id = any(i.hardware_ids)) then
    raise exception 'image % is not built for hardware id %', new.image_id, new.hardware_id using errcode = '22023';
  end if;
  return new;
end;
$$;
drop trigger if exists _100_check_hardware on gk_public.rollout_images;
create trigger _100_check_hardware before insert or update on gk_public.rollout_images
  for each row execute function gk_private.tg_rollout_images__check_hardware();

-- What a rollout installs and whom it targets is fixed once it is launched.
create or replace function gk_private.tg_rollouts__immutable_once_launched() returns trigger
language plpgsql volatile
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
drop trigger if exists _100_immutable_once_launched on gk_public.rollout_images;
create trigger _100_immutable_once_launched before insert or update or delete on gk_public.rollout_images
  for each row execute function gk_private.tg_rollouts__immutable_once_launched();
drop trigger if exists _100_immutable_once_launched on gk_public.rollout_selected_robots;
create trigger _100_immutable_once_launched before insert or update or delete on gk_public.rollout_selected_robots
  for each row execute function gk_private.tg_rollouts__immutable_once_launched();

-- ---------------------------------------------------------------------------------------------
-- Director dirty marking (statement-level: one UPDATE whatever the row count).

-- A robot row that leaves the rollout without installing (failed, cancelled, skipped) changes
-- what the robot's targets list. Completion does not (the ECU now runs the listed image), nor
-- does pending → scheduled / skipped (done by the regeneration itself, director_store). A new
-- pending row marks nothing: it makes its robot dirty by itself (sql/600_rollouts_director.sql),
-- so a launch writes no director row; it only asks the sweep to come by. A robot that has a
-- pending row when the statement ends is not marked either (a superseded row: the newer
-- launch's pending row replaces it in the robot's next documents). So a pending row that ends
-- unsigned (cancelled, failed) marks its robot: the documents may still list the superseded
-- rollout. (pending → skipped is a signing, director_store, a supersession, or a move, which
-- marks by itself.)
create or replace function gk_private.tg_rollout_robots__mark_director_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
drop trigger if exists _500_mark_director_dirty_insert on gk_public.rollout_robots;
create trigger _500_mark_director_dirty_insert after insert on gk_public.rollout_robots
  referencing new table as new_rows
  for each statement execute function gk_private.tg_rollout_robots__mark_director_dirty();
drop trigger if exists _500_mark_director_dirty_update on gk_public.rollout_robots;
create trigger _500_mark_director_dirty_update after update on gk_public.rollout_robots
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_rollout_robots__mark_director_dirty();

-- An ECU added, removed, renamed or moved to another hardware id, or an installed image that
-- is not the one its rollout lists (an operator's correction), changes the robot's targets.
create or replace function gk_private.tg_ecus__mark_director_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
drop trigger if exists _500_mark_director_dirty_insert on gk_public.ecus;
create trigger _500_mark_director_dirty_insert after insert on gk_public.ecus
  referencing new table as new_rows
  for each statement execute function gk_private.tg_ecus__mark_director_dirty();
drop trigger if exists _500_mark_director_dirty_update on gk_public.ecus;
create trigger _500_mark_director_dirty_update after update on gk_public.ecus
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_ecus__mark_director_dirty();
drop trigger if exists _500_mark_director_dirty_delete on gk_public.ecus;
create trigger _500_mark_director_dirty_delete after delete on gk_public.ecus
  referencing old table as old_rows
  for each statement execute function gk_private.tg_ecus__mark_director_dirty();

-- ---------------------------------------------------------------------------------------------
-- Admin API.

-- A prepared rollout: images = [{"hardwareId": "...", "imageId": "..."}] (1..64), robot_ids only
-- for 'selected_robots' (1..100,000), group_id only for 'group'. Everything must belong to the
-- team: the composite foreign keys refuse another team's group, robots or images.
create or replace function gk_public.rollout_create(
  team_id uuid, name text, target_type text, images jsonb,
  group_id uuid default null, robot_ids uuid[] default null, max_failed_robots int default null,
  robot_deadline interval default null
) returns gk_public.rollouts
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_public.rollout_create is 'Creates a prepared rollout of a team: target (group, hardware_id_match, selected_robots), images [{hardwareId, imageId}], failure threshold.';

-- Launch: every targeted robot of the team gets a pending row (one INSERT … SELECT), robots in
-- an older unfinished rollout have that row skipped ("superseded"). The pending rows make the
-- robots' director metadata dirty; no director row is written.
create or replace function gk_public.rollout_launch(rollout_id uuid) returns gk_public.rollouts
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_public.rollout_launch is 'Launches a prepared rollout: its robots get pending rows (one statement), which make their director metadata dirty.';

-- Cancel, at any point before the end: unfinished robots are cancelled (their targets go back
-- to what each ECU runs), installed ones stay installed.
create or replace function gk_public.rollout_cancel(rollout_id uuid, reason text default null) returns gk_public.rollouts
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_public.rollout_cancel is 'Cancels a prepared or launched rollout: robots that have not finished are cancelled and their director targets withdrawn.';

-- ---------------------------------------------------------------------------------------------
-- Robot API: one ECU event. Idempotent: (robot_id, event_id) is recorded once; a repeat
-- returns 'duplicate' and changes nothing. The robot's active rollout row moves: scheduled →
-- accepted at its first event; failed at a download or installation failure (terminal);
-- completed when every ECU it lists reports installation_completed.
create or replace function gk_private.rollouts_record_event(
  p_robot_id uuid, p_event_id uuid, p_ecu_serial text, p_type text, p_description text default null
) returns text
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_private.rollouts_record_event is 'Records one ECU event of a robot (idempotent by event id) and moves its rollout row; returns recorded or duplicate.';

-- ---------------------------------------------------------------------------------------------
-- The processor (rollouts__process): ends launched rollouts, set-based, each rollout locked
-- (FOR NO KEY UPDATE SKIP LOCKED: two processors take different rollouts; events' foreign-key
-- checks go on). Per rollout: robots past the deadline fail ('no report'); past the failure
-- threshold the rollout fails and its unfinished robots are cancelled; when no robot is
-- unfinished it completes. Returns the rollouts it ended.
create or replace function gk_private.rollouts_process(max_rollouts int)
returns table (rollout_id uuid, team_id uuid, state text, result text, timed_out int)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
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
$$;
comment on function gk_private.rollouts_process is 'Ends launched rollouts (at most max_rollouts, each locked): deadline, failure threshold, completion.';

-- Per rollout: robots by state (what GraphQL and status show).
create or replace view gk_public.rollout_summaries as
select r.id as rollout_id, r.team_id, r.name, r.state, r.launched_at, r.ended_at, r.result,
       count(rr.robot_id) as robots,
       count(rr.robot_id) filter (where rr.state = 'pending') as pending,
       count(rr.robot_id) filter (where rr.state = 'scheduled') as scheduled,
       count(rr.robot_id) filter (where rr.state = 'accepted') as accepted,
       count(rr.robot_id) filter (where rr.state = 'completed') as completed,
       count(rr.robot_id) filter (where rr.state = 'failed') as failed,
       count(rr.robot_id) filter (where rr.state = 'skipped') as skipped,
       count(rr.robot_id) filter (where rr.state = 'cancelled') as cancelled
  from gk_public.rollouts r
  left join gk_public.rollout_robots rr on rr.rollout_id = r.id
 group by r.id;
comment on view gk_public.rollout_summaries is 'Per rollout: its state and how many robots are in each state.';

-- Retention kind rollout_events: oldest first, at most max_rows.
create or replace function gk_private.retention_prune__rollout_events(cutoff timestamptz, max_rows int) returns bigint
language sql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
  with doomed as (
    select e.id from gk_public.rollout_events e where e.received_at < cutoff order by e.received_at limit max_rows),
  gone as (delete from gk_public.rollout_events e using doomed d where e.id = d.id returning 1)
  select count(*) from gone
$$;

-- Smart comments: rollouts change only through the functions above.
comment on table gk_public.rollouts is E'@behavior -insert -update -delete\nAn update of a team''s robots: target (group, hardware id match, selected robots), images per hardware id, state prepared → launched → completed / cancelled / failed.';
comment on table gk_public.rollout_images is E'@behavior -insert -update -delete\nHardware id → image of a rollout.';
comment on table gk_public.rollout_selected_robots is E'@behavior -insert -update -delete\nThe robots a selected_robots rollout targets.';
comment on table gk_public.rollout_robots is E'@behavior -insert -update -delete\nEach robot of a launched rollout: pending → scheduled → accepted → completed / failed / skipped / cancelled, with a result.';
comment on table gk_public.rollout_events is E'@behavior -insert -update -delete\nECU events reported by robots (idempotent by event id).';

grant insert (team_id, robot_id, serial, hardware_id, is_primary, installed_image_id), update (hardware_id, installed_image_id, is_primary), delete
  on gk_public.ecus to gk_admin;
grant insert (team_id, name), update (name), delete on gk_public.robot_groups to gk_admin;
grant insert (team_id, group_id, robot_id), delete on gk_public.robot_group_members to gk_admin;

-- GraphQL names: "ecus" is already plural (Ecu, allEcus, createEcu).
comment on table gk_public.ecus is E'@name ecu\nElectronic control units of a robot: serial, hardware id, the image it reports installed.';
comment on table gk_public.rollout_robot_ecus is E'@name rollout_robot_ecu\n@behavior -insert -update -delete\nPer ECU that reported an event in a rollout: the image the rollout maps it to and its last reported status.';
