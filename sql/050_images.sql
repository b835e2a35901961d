-- How the admin API presents images (migrations/0070_images.sql): admins create and delete them,
-- viewers read them (select is granted on every table by 900_grants.sql). An image never
-- changes: no update, and the key and creation time are the database's.
comment on column gk_public.images.id is E'@behavior -insert';
comment on column gk_public.images.created_at is E'@behavior -insert';
comment on table gk_public.images is E'@behavior -update\nA team''s software images (immutable: a new build is a new version), matched to ECUs by hardware id.';

grant insert (team_id, name, version, blob_key, length, sha256, sha512, hardware_ids), delete on gk_public.images to gk_admin;
