-- Up Migration
-- The fingerprint of the master key that secrets in this database are sealed under (an HMAC of a
-- fixed label under the key, never the key): recorded by the first process that starts, and every
-- later process with another key refuses to start (src/cli/master-key.ts) instead of failing each
-- job that opens a secret.
create table gk_private.master_key (
  singleton boolean primary key default true check (singleton),
  fingerprint text not null check (fingerprint ~ '^[0-9a-f]{64}$'),
  recorded_at timestamptz not null default now()
);
comment on table gk_private.master_key is 'One row: the fingerprint of the master key secrets are sealed under.';

-- Down Migration
drop table gk_private.master_key;
