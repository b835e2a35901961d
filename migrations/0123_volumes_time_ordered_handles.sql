-- Up Migration
-- New volume handles are time-ordered (UUID version 7: 48 bits of Unix milliseconds, then random
-- bits) instead of wholly random. Volumes made together get neighbouring handles, so a write that
-- touches many of them at once — the orphan mark's new row versions, likewise the collector's
-- deletes by handle — lands on neighbouring pages of volumes_worker_handle_key instead of one
-- random leaf page per row (the mark of 50,000 orphans spent about a quarter of its CPU time in
-- that index; docs/benchmarks.md). Handles stay unique by the same key; adopted handles keep
-- whatever the agent reported. An expression, not a function: a column default outlives the
-- stored logic in sql/, which is dropped and re-applied.
alter table gk_public.volumes
  alter column handle set default encode(
    overlay(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) from 1 for 6)
      placing set_byte('\x00'::bytea, 0, 112 + floor(random() * 16)::int) from 7 for 1),
    'hex')::uuid;

-- Down Migration
alter table gk_public.volumes alter column handle set default gen_random_uuid();
