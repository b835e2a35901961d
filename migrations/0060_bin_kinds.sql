-- Up Migration
-- The bin's kinds become a registry. Each area registers its kind(s) from its own sql/ file
-- (gk_private.bin_kind_register) together with a view gk_private.bin__<kind> and the functions
-- gk_private.bin_redispatch__<kind>(integer) and gk_private.bin_retry__<kind>(text); the bin view,
-- retry_bin_item, the bin reconciler and the bin metrics dispatch over this table, so a new kind
-- touches only its own area's files.
create table gk_public.bin_kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]{0,40}$'),
  -- The area key whose sql/ file defines the kind (docs/conventions.md).
  area text not null check (area ~ '^[a-z][a-z0-9]{0,30}$'),
  description text not null default '' check (length(description) <= 500),
  -- For kinds kept in gk_public.purge_items (rowless deletions): the task that drains one item,
  -- enqueued with payload {"id": <purge_items.id>}. Null for kinds with rows of their own.
  purge_task text check (purge_task ~ '^[a-z]+__[a-z_]+$'),
  registered_at timestamptz not null default now()
);
comment on table gk_public.bin_kinds is 'The kinds of pending deletions the bin lists, and the area that owns each.';

-- The kinds of the previous release, so purge_items can reference the registry from now on.
insert into gk_public.bin_kinds (kind, area, description, purge_task) values
  ('certificate', 'certificates', 'Certificates waiting to be revoked at the CA.', null),
  ('blob_prefix', 'bin', 'Blob store prefixes of deleted teams, deleted page by page.', 'blobs__purge_prefix')
on conflict (kind) do nothing;

-- A new purge_items kind needs no edit of this table's constraints: it references the registry.
alter table gk_public.purge_items drop constraint purge_items_kind_check;
alter table gk_public.purge_items
  add constraint purge_items_kind_fkey foreign key (kind) references gk_public.bin_kinds (kind) on delete restrict on update cascade;

-- Down Migration
alter table gk_public.purge_items drop constraint purge_items_kind_fkey;
alter table gk_public.purge_items add constraint purge_items_kind_check check (kind in ('blob_prefix'));
drop table gk_public.bin_kinds cascade;
