-- Up Migration
-- An image a rollout maps cannot be deleted, but deleting the team (which takes the rollout and
-- the image) must go through. NO ACTION checked at the end of the statement was not enough: the
-- cascades from teams run as separate statements, and the images' one ran first and found the
-- rollout_images rows still there. Checked at commit, the rollout's cascade has removed them.
alter table gk_public.rollout_images
  alter constraint rollout_images_team_id_image_id_fkey deferrable initially deferred;

-- Down Migration
alter table gk_public.rollout_images
  alter constraint rollout_images_team_id_image_id_fkey not deferrable;
