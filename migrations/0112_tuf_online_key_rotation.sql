-- Up Migration
-- Online-key rotation through root rotation (src/tuf/rotate.ts): root N+1 names a new online
-- key, and until root N+1 is published the publisher signs every document with the new key and
-- the previous one (src/tuf/publish.ts), so a client still trusting root N and one already at
-- root N+1 both accept whatever they fetch. The previous key is dropped once root N+1 is uploaded.
alter table gk_private.tuf_online_keys
  add column previous_key_id text,
  add column previous_sealed_private_key text check (previous_sealed_private_key like 'v1:%'),
  add constraint tuf_online_keys_previous_check check ((previous_key_id is null) = (previous_sealed_private_key is null));

-- Down Migration
alter table gk_private.tuf_online_keys
  drop constraint tuf_online_keys_previous_check,
  drop column previous_sealed_private_key,
  drop column previous_key_id;
