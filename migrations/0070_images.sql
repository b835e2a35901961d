-- Up Migration
-- A team's software images: what rollouts install on robots' ECUs (matched by hardware id) and
-- what exports serve read-only. Shared by those areas, so images are a platform area (key
-- `images`, stored logic in sql/050_images.sql): the areas that use them may import it.
-- An image is immutable once created (a new build is a new version); its bytes live in the
-- blob store under the team's prefix (teams/<team_id>/images/…), so deleting the team purges them.

-- Hardware ids of an image: 1..64 distinct ids of 1..100 printable characters (no spaces).
-- Defined here, not in sql/: the CHECK below needs it before the stored logic is applied.
create function gk_private.images_valid_hardware_ids(ids text[]) returns boolean
language sql immutable strict parallel safe
as $$
  select cardinality(ids) between 1 and 64
     and array_ndims(ids) = 1
     and (select count(distinct i) = count(*) and bool_and(i ~ '^[[:graph:]]{1,100}$') from unnest(ids) i)
$$;

create table gk_public.images (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references gk_public.teams (id) on delete cascade,
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  version text not null check (version ~ '^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}$'),
  -- Where the bytes are: under the team's prefix, so a team delete purges them with the rest.
  blob_key text not null,
  -- Bytes, up to 64 GiB.
  length bigint not null check (length between 1 and 68719476736),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  sha512 text not null check (sha512 ~ '^[0-9a-f]{128}$'),
  hardware_ids text[] not null check (gk_private.images_valid_hardware_ids(hardware_ids)),
  created_at timestamptz not null default now(),
  constraint images_team_name_version_key unique (team_id, name, version),
  constraint images_blob_key_under_team check (
    starts_with(blob_key, 'teams/' || team_id::text || '/images/')
    and length(blob_key) between length('teams/' || team_id::text || '/images/') + 1 and 1024
    and blob_key !~ '(^|/)\.\.?(/|$)' and blob_key !~ '[[:cntrl:]\\]' and blob_key !~ '//'
  )
);
-- Rollouts match images by hardware id.
create index images_hardware_ids_idx on gk_public.images using gin (hardware_ids);
comment on column gk_public.images.blob_key is 'Blob store key of the image''s bytes, under teams/<team_id>/images/.';
comment on column gk_public.images.hardware_ids is 'ECU hardware ids this image can be installed on (1 to 64, distinct).';

-- Down Migration
drop table gk_public.images;
drop function gk_private.images_valid_hardware_ids(text[]);
