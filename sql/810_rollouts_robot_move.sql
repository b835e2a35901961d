-- A robot moved to another team (update robots set team_id = …), with everything it has. Its
-- ECUs, their keys and its director row follow by ON UPDATE CASCADE (migration 0144); what
-- belongs to the old team ends here: selections of its rollouts (before the update, as their
-- key names the old team), group memberships (after it: their key is checked at commit), unfinished rollout rows (skipped when pending, else cancelled,
-- "robot moved to team …"; the processor then completes those rollouts), the ECUs' installed
-- image references (images are the old team's), and the director documents signed by the old
-- team's director (the robot is dirty with a new generation and signed again under the new
-- team's, created at its first read as for a new robot). Finished rollout rows stay as history.

create or replace function gk_private.tg_robots__leave_team() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
begin
  if not exists (select 1 from gk_public.teams t where t.id = new.team_id) then
    raise exception 'team % not found', new.team_id using errcode = 'P0002';
  end if;
  -- Both teams' launches wait for the move (and the move for them), taken in one order.
  perform gk_private.rollouts_team_lock(x.id) from (values (old.team_id), (new.team_id)) x (id) order by x.id;
  delete from gk_public.rollout_selected_robots s where s.robot_id = old.id and s.team_id = old.team_id;
  -- The lock order (rollout rows before director rows): the cascade locks the director row
  -- before the statement's end, where the unfinished rows are ended.
  perform 1 from gk_public.rollout_robots rr
   where rr.robot_id = old.id and rr.state in ('pending', 'scheduled', 'accepted') for update;
  return new;
end;
$$;
drop trigger if exists _100_leave_team on gk_public.robots;
create trigger _100_leave_team before update of team_id on gk_public.robots
  for each row when (old.team_id is distinct from new.team_id)
  execute function gk_private.tg_robots__leave_team();

-- An ECU moved with its robot no longer references the old team's image (the foreign key to
-- images is team-scoped); it keeps its reported status, and reports its next installation.
create or replace function gk_private.tg_ecus__leave_team_images() returns trigger
language plpgsql volatile
set search_path to pg_catalog, pg_temp
set jit to off
as $$
begin
  new.installed_image_id := null;
  return new;
end;
$$;
drop trigger if exists _100_leave_team_images on gk_public.ecus;
create trigger _100_leave_team_images before update of team_id on gk_public.ecus
  for each row when (old.team_id is distinct from new.team_id)
  execute function gk_private.tg_ecus__leave_team_images();

-- After the statement: every moved robot at once, rollout rows before director rows (the lock
-- order of sql/600_rollouts_director.sql; tg_robots__leave_team took the rollout rows already).
create or replace function gk_private.tg_robots__moved_team() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
set jit to off
as $$
declare
  moved uuid[];
begin
  moved := array(select n.id from new_rows n join old_rows o on o.id = n.id where n.team_id <> o.team_id order by n.id);
  if cardinality(moved) = 0 then
    return null;
  end if;
  -- The moved robots' rollout rows per robot (lateral, in robot order: the lock order), as
  -- director_prepare reaches them: a join planned on statistics from before a launch scanned
  -- every unfinished row of it.
  with ending as (
    select rr.rollout_id, rr.robot_id, t.name as team_name
      from (select u.id from unnest(moved) u (id) order by u.id) u
      cross join lateral (select rr.rollout_id, rr.robot_id, rr.team_id from gk_public.rollout_robots rr
                           where rr.robot_id = u.id and rr.state in ('pending', 'scheduled', 'accepted')
                             for update of rr) rr
      join gk_public.robots r on r.id = u.id
      join gk_public.teams t on t.id = r.team_id
     where rr.team_id <> r.team_id
  )
  update gk_public.rollout_robots rr
     set state = case when rr.state = 'pending' then 'skipped' else 'cancelled' end,
         result = format('robot moved to team %s', e.team_name), updated_at = now()
    from ending e
   where rr.rollout_id = e.rollout_id and rr.robot_id = e.robot_id;
  delete from gk_public.robot_group_members m
   using unnest(moved) u (id) join gk_public.robots r on r.id = u.id
   where m.robot_id = u.id and m.team_id <> r.team_id;
  delete from gk_public.robot_director_documents x using unnest(moved) u (id) where x.robot_id = u.id;
  perform gk_private.director_mark_dirty(array(
    select d.robot_id from unnest(moved) u (id) join gk_public.robot_directors d on d.robot_id = u.id order by d.robot_id));
  return null;
end;
$$;
drop trigger if exists _510_moved_team on gk_public.robots;
create trigger _510_moved_team after update on gk_public.robots
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_robots__moved_team();
