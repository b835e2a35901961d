-- TUF repository per team: dirty bins, publish scheduling, resign sweep, retention, admin API.
-- Lock order (deadlock freedom): whoever locks several tuf_roles rows locks them ordered by
-- (team_id, role) — target writers (bins), the resign sweep and the publisher all do. Writers
-- bump dirty_generation; the publisher signs without holding role locks and, at the end, clears
-- dirty only where the generation is still the one it read.

-- Blob key of a team's published TUF file (metadata/<file> or targets/<path>).
create or replace function gk_private.tuf_blob_key(team_id uuid, file text) returns text
language sql immutable strict parallel safe
as $$ select 'teams/' || team_id || '/tuf/' || file $$;

-- Enqueue the team's publish. preserve_run_at throttles rather than debounces: the first
-- change schedules a publish publish_delay later and later changes join it, so a steady
-- stream of writes still gets published every publish_delay (replace would starve it). The
-- delay stretches to twice the last signing time, so big publishes cannot run back to back.
create or replace function gk_private.tuf_schedule_publish(team_ids uuid[]) returns void
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  r record;
begin
  for r in
    select p.team_id, greatest(p.publish_delay, 2 * p.last_sign_duration) as publish_delay
      from gk_public.tuf_repositories p
     where p.team_id = any(team_ids)
     order by p.team_id
  loop
    perform gk_private.enqueue(
      'tuf__publish',
      jsonb_build_object('team_id', r.team_id),
      job_key := 'tuf__publish:' || r.team_id,
      run_at := now() + r.publish_delay,
      job_key_mode := 'preserve_run_at'
    );
  end loop;
end;
$$;

-- Marks the bins holding these (team, path_hash32) pairs dirty, in one statement, and schedules
-- one publish per team. Rows are locked in (team_id, role) order first (see the top).
create or replace function gk_private.tuf_mark_bins_dirty(team_ids uuid[], hashes bigint[]) returns void
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
begin
  perform 1
     from gk_public.tuf_roles ro
     join (select distinct c.team_id, (c.h >> (32 - p.bit_length))::int as bin
             from unnest(team_ids, hashes) as c (team_id, h)
             join gk_public.tuf_repositories p on p.team_id = c.team_id) c
       on c.team_id = ro.team_id and c.bin = ro.bin
    order by ro.team_id, ro.role
      for update of ro;

  update gk_public.tuf_roles ro
     set dirty = true, dirty_since = coalesce(ro.dirty_since, now()), dirty_generation = ro.dirty_generation + 1
    from (select distinct c.team_id, (c.h >> (32 - p.bit_length))::int as bin
            from unnest(team_ids, hashes) as c (team_id, h)
            join gk_public.tuf_repositories p on p.team_id = c.team_id) c
   where c.team_id = ro.team_id and c.bin = ro.bin;

  perform gk_private.tuf_schedule_publish(array(select distinct u from unnest(team_ids) as u));
end;
$$;

-- Row-level, before the CHECK constraints of migration 0110: the same rules, as a clear 22023
-- error naming the target and its problem (a constraint violation names only the constraint).
-- SECURITY DEFINER: writers (gk_admin) have no usage on gk_private, where the rules live.
create or replace function gk_private.tg_tuf_targets__check_target() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  problem text;
begin
  problem := gk_private.tuf_path_problem(new.path);
  if problem is not null then
    raise exception 'target path % %', left(to_json(new.path)::text, 200), problem using errcode = '22023';
  end if;
  if new.length < 0 or new.length > 9007199254740991 then
    raise exception 'target %: length % is not between 0 and 2^53 - 1', left(to_json(new.path)::text, 200), new.length
      using errcode = '22023';
  end if;
  problem := gk_private.tuf_hashes_problem(new.hashes);
  if problem is not null then
    raise exception 'target %: hashes: %', left(to_json(new.path)::text, 200), problem using errcode = '22023';
  end if;
  if new.custom is not null then
    problem := gk_private.tuf_custom_problem(new.custom);
    if problem is not null then
      raise exception 'target %: custom %', left(to_json(new.path)::text, 200), problem using errcode = '22023';
    end if;
  end if;
  return new;
end;
$$;

drop trigger if exists _100_check_target on gk_public.tuf_targets;
create trigger _100_check_target before insert or update of path, length, hashes, custom on gk_public.tuf_targets
  for each row execute function gk_private.tg_tuf_targets__check_target();

-- Paths are the keys of their bin's `targets` object, so two paths of one bin must sort the
-- same in every client (gk_private.tuf_key_order_conflict). Called by the statement trigger
-- after tuf_mark_bins_dirty has locked the bins' role rows: a concurrent writer of the same
-- bin waits for this one and then sees its rows (each statement here takes a new snapshot), so
-- two conflicting paths cannot both get in. Only paths with characters of both classes matter.
create or replace function gk_private.tuf_refuse_bin_order_conflicts(team_ids uuid[], hashes bigint[]) returns void
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  r record;
begin
  for r in
    select c.team_id, c.bin, gk_private.tuf_key_order_conflict(array(
             select t.path from gk_public.tuf_targets t
              where t.team_id = c.team_id
                and t.path_hash32 >= (c.bin::bigint << (32 - c.bit_length))
                and t.path_hash32 < ((c.bin::bigint + 1) << (32 - c.bit_length))
                and t.path ~ '[\uE000-\uFFFF\U00010000-\U0010FFFF]')) as pair
      from (select distinct u.team_id, (u.h >> (32 - p.bit_length))::int as bin, p.bit_length
              from unnest(team_ids, hashes) as u (team_id, h)
              join gk_public.tuf_repositories p on p.team_id = u.team_id) c
  loop
    if r.pair is not null then
      raise exception 'target paths % and % sort differently in UTF-16 (tuf-js) and by code point (python-tuf, go-tuf), and they share a bin: rename one',
        left(to_json(r.pair[1])::text, 200), left(to_json(r.pair[2])::text, 200)
        using errcode = '22023';
    end if;
  end loop;
end;
$$;

-- Statement-level: one call per INSERT/UPDATE/DELETE statement, however many rows it touched.
-- SECURITY DEFINER: writers (gk_admin, platform roles) may not touch tuf_roles or gk_private.
create or replace function gk_private.tg_tuf_targets__mark_bins_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  teams uuid[];
  hashes bigint[];
begin
  if tg_op = 'INSERT' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes from new_rows;
  elsif tg_op = 'DELETE' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes from old_rows;
  else
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes
      from (select team_id, path_hash32 from new_rows union select team_id, path_hash32 from old_rows) c;
  end if;
  if teams is not null then
    perform gk_private.tuf_mark_bins_dirty(teams, hashes);
  end if;
  if tg_op <> 'DELETE' then
    select array_agg(team_id), array_agg(path_hash32) into teams, hashes
      from new_rows where path ~ '[\uE000-\uFFFF\U00010000-\U0010FFFF]';
    if teams is not null then
      perform gk_private.tuf_refuse_bin_order_conflicts(teams, hashes);
    end if;
  end if;
  return null;
end;
$$;

drop trigger if exists _500_mark_bins_dirty_insert on gk_public.tuf_targets;
create trigger _500_mark_bins_dirty_insert after insert on gk_public.tuf_targets
  referencing new table as new_rows
  for each statement execute function gk_private.tg_tuf_targets__mark_bins_dirty();
drop trigger if exists _500_mark_bins_dirty_update on gk_public.tuf_targets;
create trigger _500_mark_bins_dirty_update after update on gk_public.tuf_targets
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_tuf_targets__mark_bins_dirty();
drop trigger if exists _500_mark_bins_dirty_delete on gk_public.tuf_targets;
create trigger _500_mark_bins_dirty_delete after delete on gk_public.tuf_targets
  referencing old table as old_rows
  for each statement execute function gk_private.tg_tuf_targets__mark_bins_dirty();

-- The bin of a path for a repository of 2^bit_length bins (what clients compute).
create or replace function gk_public.tuf_bin_of(path text, bit_length int) returns int
language sql immutable strict parallel safe
as $$ select (gk_private.tuf_path_hash32(path) >> (32 - bit_length))::int $$;
comment on function gk_public.tuf_bin_of is 'The hashed bin (TAP 15) of a target path: first 32 bits of sha256(path) >> (32 - bit_length).';

-- Admin API: add or replace a batch of targets (a JSON array of {path, length, hashes, custom}).
create or replace function gk_public.tuf_add_targets(team_id uuid, targets jsonb) returns int
language plpgsql volatile
as $$
declare
  n int;
begin
  if targets is null or jsonb_typeof(targets) <> 'array' then
    raise exception 'targets must be a JSON array of {path, length, hashes, custom}' using errcode = '22023';
  end if;
  if not exists (select 1 from gk_public.tuf_repositories p where p.team_id = tuf_add_targets.team_id) then
    raise exception 'team % has no TUF repository (run: groundskeeper tuf init)', tuf_add_targets.team_id using errcode = '22023';
  end if;
  insert into gk_public.tuf_targets as t (team_id, path, length, hashes, custom)
  select tuf_add_targets.team_id, x.path, x.length, x.hashes, x.custom
    from jsonb_to_recordset(targets) as x (path text, length bigint, hashes jsonb, custom jsonb)
  on conflict on constraint tuf_targets_pkey do update
     set length = excluded.length, hashes = excluded.hashes, custom = excluded.custom, updated_at = now()
   where (t.length, t.hashes, t.custom) is distinct from (excluded.length, excluded.hashes, excluded.custom);
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function gk_public.tuf_add_targets is 'Adds (or updates) a batch of targets: [{path, length, hashes: {sha256: hex}, custom}]. Returns rows written.';

create or replace function gk_public.tuf_remove_targets(team_id uuid, paths text[]) returns int
language plpgsql volatile
as $$
declare
  n int;
begin
  delete from gk_public.tuf_targets t where t.team_id = tuf_remove_targets.team_id and t.path = any(paths);
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function gk_public.tuf_remove_targets is 'Removes a batch of targets by path. Returns rows removed.';

-- The resigner's sweep: every online role expiring within its repository's window is marked
-- dirty on its own (a timestamp is renewed even when no bin is near expiry). Also re-schedules
-- a publish for every team with dirty roles or documents still waiting for upload, so a lost
-- job or a crash between commit and upload is repaired. Returns what it did per team.
create or replace function gk_private.tuf_resign_sweep()
returns table (team_id uuid, roles_marked int, pending_uploads int)
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  widest interval := (select max(resign_window) from gk_public.tuf_repositories);
begin
  if widest is null then
    return;
  end if;
  perform 1
     from gk_public.tuf_roles ro
     join gk_public.tuf_repositories p on p.team_id = ro.team_id
    where not ro.dirty
      and ro.expires < now() + widest
      and ro.expires < now() + p.resign_window
    order by ro.team_id, ro.role
      for update of ro;

  return query
  with marked as (
    update gk_public.tuf_roles ro
       set dirty = true, dirty_since = now(), dirty_generation = ro.dirty_generation + 1
      from gk_public.tuf_repositories p
     where p.team_id = ro.team_id
       and not ro.dirty
       and ro.expires < now() + widest
       and ro.expires < now() + p.resign_window
    returning ro.team_id
  ), marked_per_team as (
    select m.team_id, count(*)::int as n from marked m group by m.team_id
  ), dirty_teams as (
    select distinct ro.team_id from gk_public.tuf_roles ro where ro.dirty
  ), pending as (
    select m.team_id, count(*)::int as n
      from gk_public.tuf_metadata m
     where m.uploaded_at is null
     group by m.team_id
  ), teams as (
    select t.team_id from marked_per_team t
    union select d.team_id from dirty_teams d
    union select p.team_id from pending p
  )
  select t.team_id, coalesce(mk.n, 0), coalesce(pd.n, 0)
    from teams t
    left join marked_per_team mk on mk.team_id = t.team_id
    left join pending pd on pd.team_id = t.team_id;

  -- RETURN QUERY does not leave the function: now schedule those teams' publishes.
  perform gk_private.tuf_schedule_publish(array(
    select ro.team_id from gk_public.tuf_roles ro where ro.dirty
    union
    select m.team_id from gk_public.tuf_metadata m where m.uploaded_at is null
  ));
end;
$$;

-- Retention (kind 'tuf_metadata'): deletes superseded versions created before the cutoff.
-- Kept: root (clients walk the whole chain), anything not uploaded yet, and for every role
-- every version >= the one the published timestamp.json leads to (timestamp → snapshot →
-- targets and bins). The deleted files are removed from the blob store by tuf__delete_blobs.
-- At most max_rows versions per call, oldest first; the sweep comes back for the rest.
drop function if exists gk_private.retention_prune__tuf_metadata(timestamptz);
create or replace function gk_private.retention_prune__tuf_metadata(cutoff timestamptz, max_rows int) returns bigint
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  n bigint;
begin
  create temp table if not exists tuf_pruned (team_id uuid, file text) on commit drop;
  truncate tuf_pruned;

  with published as (
    select c.team_id, c.timestamp_version,
           (ts.document::jsonb #>> '{signed,meta,snapshot.json,version}')::int as snapshot_version
      from gk_private.tuf_upload_cursors c
      join gk_public.tuf_metadata ts
        on ts.team_id = c.team_id and ts.role = 'timestamp' and ts.version = c.timestamp_version
  ), keep_from as (
    select p.team_id, 'timestamp'::text as role, p.timestamp_version as version from published p
    union all
    select p.team_id, 'snapshot', p.snapshot_version from published p
    union all
    select p.team_id, left(m.key, -5), (m.value ->> 'version')::int
      from published p
      join gk_public.tuf_metadata s
        on s.team_id = p.team_id and s.role = 'snapshot' and s.version = p.snapshot_version
     cross join lateral jsonb_each(s.document::jsonb -> 'signed' -> 'meta') m
  ), doomed as (
    select d.id
      from gk_public.tuf_metadata d
      join keep_from k on d.team_id = k.team_id and d.role = k.role and d.version < k.version
     where d.role <> 'root' and d.uploaded_at is not null and d.created_at < cutoff
     order by d.created_at, d.id
     limit max_rows
  ), deleted as (
    delete from gk_public.tuf_metadata d
     using (select distinct x.id from doomed x) x
     where d.id = x.id
    returning d.team_id, d.role, d.version
  )
  insert into tuf_pruned
  select d.team_id, case when d.role = 'timestamp' then null else d.version || '.' || d.role || '.json' end
    from deleted d;

  get diagnostics n = row_count;

  perform gk_private.enqueue_many('tuf__delete_blobs', array(
    select jsonb_build_object('team_id', c.team_id, 'files', jsonb_agg(c.file order by c.file))
      from (select p.team_id, p.file, (row_number() over (partition by p.team_id order by p.file) - 1) / 1000 as chunk
              from tuf_pruned p where p.file is not null) c
     group by c.team_id, c.chunk
  ));
  return n;
end;
$$;
comment on function gk_private.retention_prune__tuf_metadata is 'Retention kind tuf_metadata: deletes superseded, uploaded, non-root metadata versions older than cutoff (at most max_rows); never what the published timestamp leads to.';

-- Lifetimes a publish can sign and the resigner can keep (migration 0111): the same rule as the
-- constraint, raised as a clear 22023 error when tuf init or an admin's update breaks it.
create or replace function gk_private.tg_tuf_repositories__check_lifetimes() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
declare
  problem text := gk_private.tuf_lifetimes_problem(new.targets_lifetime, new.bins_lifetime, new.snapshot_lifetime,
                                                   new.timestamp_lifetime, new.resign_window, new.publish_delay);
begin
  if problem is not null then
    raise exception 'TUF repository lifetimes: %', problem using errcode = '22023';
  end if;
  return new;
end;
$$;

drop trigger if exists _100_check_lifetimes on gk_public.tuf_repositories;
create trigger _100_check_lifetimes
  before insert or update of targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay
  on gk_public.tuf_repositories
  for each row execute function gk_private.tg_tuf_repositories__check_lifetimes();

-- Outcome recorders of a publish (src/tuf/publish.ts publishTeam). A failure keeps the
-- repository's first failing time, so "failing since" survives the job's retries.
create or replace function gk_private.tuf_publish_failed(team_id uuid, error text) returns void
language sql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
  update gk_public.tuf_repositories p
     set last_publish_error = left(coalesce(nullif(error, ''), 'unknown error'), 2000),
         publish_failing_since = coalesce(p.publish_failing_since, now()),
         publish_failures = p.publish_failures + 1
   where p.team_id = tuf_publish_failed.team_id
$$;

create or replace function gk_private.tuf_publish_succeeded(team_id uuid) returns void
language sql volatile security definer
set search_path to pg_catalog, pg_temp
as $$
  update gk_public.tuf_repositories p
     set last_publish_error = null, publish_failing_since = null, publish_failures = 0, last_published_at = now()
   where p.team_id = tuf_publish_succeeded.team_id
$$;

-- What an operator wants to know about a repository at a glance.
create or replace view gk_public.tuf_repository_status as
select p.team_id,
       t.name as team_name,
       p.bit_length,
       (1 << p.bit_length) as bins,
       p.root_version,
       p.root_expires,
       (select count(*) from gk_public.tuf_roles ro where ro.team_id = p.team_id and ro.dirty) as dirty_roles,
       tg.version as targets_version, tg.expires as targets_expires,
       sn.version as snapshot_version, sn.expires as snapshot_expires,
       ts.version as timestamp_version, ts.expires as timestamp_expires,
       (select min(ro.expires) from gk_public.tuf_roles ro where ro.team_id = p.team_id and ro.bin is not null) as bins_next_expiry,
       c.timestamp_version as published_timestamp_version,
       c.uploaded_at as last_uploaded_at,
       (select count(*) from gk_public.tuf_metadata m where m.team_id = p.team_id and m.uploaded_at is null) as pending_uploads,
       p.last_publish_error,
       p.publish_failing_since,
       p.publish_failures,
       p.last_published_at
  from gk_public.tuf_repositories p
  join gk_public.teams t on t.id = p.team_id
  left join gk_public.tuf_roles tg on tg.team_id = p.team_id and tg.role = 'targets'
  left join gk_public.tuf_roles sn on sn.team_id = p.team_id and sn.role = 'snapshot'
  left join gk_public.tuf_roles ts on ts.team_id = p.team_id and ts.role = 'timestamp'
  left join gk_private.tuf_upload_cursors c on c.team_id = p.team_id;
comment on view gk_public.tuf_repository_status is 'Per team: dirty roles, current and published versions, expiries, uploads pending, and a failing publish (error, since when, how many attempts).';

-- Grants (the online private key stays in gk_private: never readable through the API).
grant select on gk_public.tuf_repositories, gk_public.tuf_roles, gk_public.tuf_targets,
  gk_public.tuf_metadata, gk_public.tuf_repository_status to gk_viewer, gk_admin;
grant insert, update, delete on gk_public.tuf_targets to gk_admin;
grant update (targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay)
  on gk_public.tuf_repositories to gk_admin;
