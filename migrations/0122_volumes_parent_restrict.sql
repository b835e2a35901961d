-- Up Migration
-- The copy-on-write key refuses deleting a parent that has a child with RESTRICT instead of
-- NO ACTION. Both check at the end of the statement, so a parent and its children still go in one
-- statement (volumes_remove_missing, a pruned worker's cascade); RESTRICT costs one check per
-- deleted row where NO ACTION first also looks for another row with the same key — the
-- collector deletes every destroyed volume's row, so this is on its path (bench/volumes.ts).
alter table gk_public.volumes
  drop constraint volumes_parent_fkey,
  add constraint volumes_parent_fkey foreign key (parent_id, parent_state, worker_id)
    references gk_public.volumes (id, state, worker_id) on delete restrict on update restrict;

-- Down Migration
alter table gk_public.volumes
  drop constraint volumes_parent_fkey,
  add constraint volumes_parent_fkey foreign key (parent_id, parent_state, worker_id)
    references gk_public.volumes (id, state, worker_id) on delete no action on update restrict;
