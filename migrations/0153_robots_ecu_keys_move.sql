-- Up Migration
-- An ECU's key moves with its ECU when the robot moves to another team (0144: ECUs follow the
-- robot by ON UPDATE CASCADE).
alter table gk_public.ecu_keys
  drop constraint ecu_keys_team_id_ecu_id_fkey,
  add constraint ecu_keys_team_id_ecu_id_fkey foreign key (team_id, ecu_id)
    references gk_public.ecus (team_id, id) on update cascade on delete cascade;

-- Down Migration
alter table gk_public.ecu_keys
  drop constraint ecu_keys_team_id_ecu_id_fkey,
  add constraint ecu_keys_team_id_ecu_id_fkey foreign key (team_id, ecu_id)
    references gk_public.ecus (team_id, id) on delete cascade;
