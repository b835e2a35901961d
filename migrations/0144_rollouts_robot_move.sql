-- Up Migration
-- A robot can move to another team (update robots set team_id = …) with everything it has.
-- What is part of the robot moves with it, by ON UPDATE CASCADE: its ECUs, their keys and its
-- director row (ECU keys: 0153). A cascade rather than a trigger because the database then does it for every
-- writer, checked by the same keys, and it touches only the moved robot's own rows.
alter table gk_public.ecus
  drop constraint ecus_team_id_robot_id_fkey,
  add constraint ecus_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on update cascade on delete cascade;
alter table gk_public.robot_directors
  drop constraint robot_directors_team_id_robot_id_fkey,
  add constraint robot_directors_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on update cascade on delete cascade;

-- A moved robot's memberships in the old team's groups end (sql/810_rollouts_robot_move.sql,
-- after the statement: deleting one bumps the robot's certificate generation, which a trigger
-- before the robot's own update may not do). So the key is checked at commit, when they are gone.
alter table gk_public.robot_group_members
  alter constraint robot_group_members_team_id_robot_id_fkey deferrable initially deferred;

-- Rollout rows, per-ECU rows and events are the old team's rollouts' history: they keep the
-- rollout's team id, so they reference the robot and the ECU by id alone (a robot that leaves
-- its team leaves its rollouts: the move ends its unfinished rows, sql/800_rollouts.sql). The
-- team of a new row is still the robot's: rows are written only by rollout_launch (the team's
-- robots) and rollouts_record_event (the robot's ECUs and its unfinished row).
alter table gk_public.rollout_robots
  drop constraint rollout_robots_team_id_robot_id_fkey,
  add constraint rollout_robots_robot_id_fkey foreign key (robot_id) references gk_public.robots (id) on delete cascade;
-- A robot's delete finds its rows (the old key had no index either).
create index rollout_robots_robot_idx on gk_public.rollout_robots (robot_id);
alter table gk_public.rollout_robot_ecus
  drop constraint rollout_robot_ecus_team_id_ecu_id_fkey,
  add constraint rollout_robot_ecus_ecu_id_fkey foreign key (ecu_id) references gk_public.ecus (id) on delete cascade;
alter table gk_public.rollout_events
  drop constraint rollout_events_team_id_robot_id_fkey,
  drop constraint rollout_events_team_id_ecu_id_fkey,
  add constraint rollout_events_robot_id_fkey foreign key (robot_id) references gk_public.robots (id) on delete cascade,
  add constraint rollout_events_ecu_id_fkey foreign key (ecu_id) references gk_public.ecus (id) on delete cascade;

-- Down Migration
-- (Fails while rows of a moved robot's old rollouts exist: they name the old team.)
alter table gk_public.robot_group_members
  alter constraint robot_group_members_team_id_robot_id_fkey not deferrable;
alter table gk_public.rollout_events
  drop constraint rollout_events_robot_id_fkey,
  drop constraint rollout_events_ecu_id_fkey,
  add constraint rollout_events_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on delete cascade,
  add constraint rollout_events_team_id_ecu_id_fkey foreign key (team_id, ecu_id)
    references gk_public.ecus (team_id, id) on delete cascade;
alter table gk_public.rollout_robot_ecus
  drop constraint rollout_robot_ecus_ecu_id_fkey,
  add constraint rollout_robot_ecus_team_id_ecu_id_fkey foreign key (team_id, ecu_id)
    references gk_public.ecus (team_id, id) on delete cascade;
drop index gk_public.rollout_robots_robot_idx;
alter table gk_public.rollout_robots
  drop constraint rollout_robots_robot_id_fkey,
  add constraint rollout_robots_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on delete cascade;
alter table gk_public.robot_directors
  drop constraint robot_directors_team_id_robot_id_fkey,
  add constraint robot_directors_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on delete cascade;
alter table gk_public.ecus
  drop constraint ecus_team_id_robot_id_fkey,
  add constraint ecus_team_id_robot_id_fkey foreign key (team_id, robot_id)
    references gk_public.robots (team_id, id) on delete cascade;
