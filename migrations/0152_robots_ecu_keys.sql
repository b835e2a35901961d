-- Up Migration
-- The public key of each ECU (Uptane: every ECU signs its version report with its own key, the
-- primary also signs the vehicle manifest). Registered by an admin (GraphQL createEcuKey),
-- never by the robot itself: a manifest's signature is worth something only if the key it is
-- checked against did not come over the same channel. Checked in src/robots/manifest.ts.
create table gk_public.ecu_keys (
  ecu_id uuid primary key,
  team_id uuid not null,
  key_type text not null default 'ed25519' check (key_type = 'ed25519'),
  -- The raw ed25519 public key, hex (TUF's keyval.public).
  public_key text not null check (public_key ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  foreign key (team_id, ecu_id) references gk_public.ecus (team_id, id) on delete cascade
);
create index ecu_keys_team_idx on gk_public.ecu_keys (team_id);
comment on table gk_public.ecu_keys is 'Each ECU''s public key (ed25519), against which the signatures of its robot''s manifests are checked.';

-- Down Migration
drop table gk_public.ecu_keys;
