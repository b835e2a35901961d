-- Up Migration
-- The robot API (src/peers/robot-api.ts) authenticates every request by the serial of the
-- robot certificate presented; stored logic: sql/640_robots_api.sql.
create index certificates_robot_serial_idx on gk_public.certificates (serial) where profile = 'robot';

-- Down Migration
drop function if exists gk_private.robot_certificate_identity(text);
drop function if exists gk_private.robot_manifest_received(uuid, uuid, boolean, jsonb);
drop index if exists gk_public.certificates_robot_serial_idx;
