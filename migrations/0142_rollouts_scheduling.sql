-- Up Migration
-- Scheduling a robot (gk_private.director_schedule) looks up a rollout row's ECUs by
-- (rollout_id, robot_id), as does the cascade from rollout_robots: an index behind it. The
-- image of a rollout_robot_ecus row is always its rollout_images row's image (director_schedule
-- copies it), and that row holds the image's foreign key, so this table's own check — one per
-- scheduled ECU — goes.
create index rollout_robot_ecus_robot_idx on gk_public.rollout_robot_ecus (rollout_id, robot_id);
alter table gk_public.rollout_robot_ecus drop constraint rollout_robot_ecus_team_id_image_id_fkey;
drop index gk_public.rollout_robot_ecus_image_idx;

-- Down Migration
create index rollout_robot_ecus_image_idx on gk_public.rollout_robot_ecus (image_id);
alter table gk_public.rollout_robot_ecus add constraint rollout_robot_ecus_team_id_image_id_fkey
  foreign key (team_id, image_id) references gk_public.images (team_id, id) on delete no action;
drop index gk_public.rollout_robot_ecus_robot_idx;
