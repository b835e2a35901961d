-- Bin kind `blob_prefix`: a deleted team's blob prefix, kept in gk_public.purge_items and deleted
-- page by page by tasks/blobs__purge_prefix.ts. The bin's own kind, and the template for a kind
-- without rows of its own: a view, the two functions (delegating to the purge_items helpers in
-- 020_bin.sql), and the registration.

-- Where a team's blobs live in the blob store (the purge deletes everything under it).
create or replace function gk_public.team_blob_prefix(team_id uuid) returns text
language sql immutable strict
as $$
  select 'teams/' || team_id::text || '/';
$$;
comment on function gk_public.team_blob_prefix is 'The blob store prefix holding a team''s objects; purged when the team is deleted.';

-- A deleted team's blob prefix goes to the bin in the same statement (plain SQL or GraphQL).
create or replace function gk_private.tg_teams__purge_blobs() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  -- Due only after a lease, like a certificate: its first job is enqueued right now, so the bin
  -- reconciler must not re-enqueue (nor the bin call overdue) a purge that is simply running.
  insert into gk_public.purge_items (kind, ref, team_id, next_attempt_at)
  select 'blob_prefix', gk_public.team_blob_prefix(o.id), o.id, now() + gk_private.bin_lease() from old_rows o
  on conflict (kind, ref) where completed_at is null do nothing;
  return null;
end;
$$;

drop trigger if exists _500_purge_blobs on gk_public.teams;
create trigger _500_purge_blobs
  after delete on gk_public.teams
  referencing old table as old_rows
  for each statement execute function gk_private.tg_teams__purge_blobs();

create or replace view gk_private.bin__blob_prefix as
  select p.ref, p.team_id, p.enqueued_at, p.attempts, p.last_error, p.next_attempt_at
    from gk_public.purge_items p
   where p.kind = 'blob_prefix' and p.completed_at is null;

create or replace function gk_private.bin_redispatch__blob_prefix(max_items int) returns jsonb
language sql volatile
as $$ select gk_private.purge_items_redispatch('blob_prefix', max_items) $$;

create or replace function gk_private.bin_retry__blob_prefix(ref text) returns boolean
language sql volatile
as $$ select gk_private.purge_items_retry('blob_prefix', ref) $$;

select gk_private.bin_kind_register('blob_prefix', 'bin', 'Blob store prefixes of deleted teams, deleted page by page.',
                                    purge_task := 'blobs__purge_prefix');
