-- Robot certificates, regenerated lazily (migrations/0151_robots_certificates.sql). What a robot
-- certificate encodes is gk_private.robot_certificate_subject; a change to it marks the robots
-- dirty in bulk (one UPDATE, generation + 1), and a replacement is requested through the
-- ordinary request path (an 'issuing' row: certificates__issue issues it) at the robot's next
-- certificate read (src/robots/certificate.ts) or by the sweep (tasks/robots__regenerate.ts).
-- Security changes are never lazy: a deleted robot's or revoked certificate is refused at once.

-- What a robot's certificate encodes besides CN = robot id and OU = robot (SubjectExtra): O = its
-- team's name; OUs name=<robot name>, hw=<hardware id> of each of its ECUs, group=<group name>
-- of each group it is in (ECUs and groups: migrations/0140_rollouts.sql), sorted.
create or replace function gk_private.robot_certificate_subject(robot_id uuid)
returns jsonb
language sql stable
as $$
  select jsonb_build_object('organization', t.name, 'units',
           jsonb_build_array('name=' || r.name)
           || coalesce((select jsonb_agg('hw=' || h.hardware_id order by h.hardware_id)
                          from (select distinct e.hardware_id from gk_public.ecus e where e.robot_id = r.id) h), '[]')
           || coalesce((select jsonb_agg('group=' || g.name order by g.name)
                          from gk_public.robot_group_members m join gk_public.robot_groups g on g.id = m.group_id
                         where m.robot_id = r.id), '[]'))
    from gk_public.robots r join gk_public.teams t on t.id = r.team_id
   where r.id = robot_certificate_subject.robot_id;
$$;

comment on column gk_public.robots.certificate_generation is E'@behavior -insert -update\nBumped whenever something the robot''s certificate encodes changes (its name, its team''s name).';
comment on column gk_public.robots.certificate_dirty_since is E'@behavior -insert -update\nSince when the robot''s certificate encodes an older generation: it gets a new one at its next certificate read, or from the sweep (robots__regenerate).';

-- A robot certificate takes its subject and the generation it encodes when it is requested.
create or replace function gk_private.tg_certificates__robot_subject() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if new.profile = 'robot' and new.robot_id is not null and new.subject_generation is null then
    select gk_private.robot_certificate_subject(r.id), r.certificate_generation
      into new.subject, new.subject_generation
      from gk_public.robots r where r.id = new.robot_id;
  end if;
  return new;
end;
$$;
drop trigger if exists _110_robot_subject on gk_public.certificates;
create trigger _110_robot_subject
  before insert on gk_public.certificates
  for each row execute function gk_private.tg_certificates__robot_subject();

-- ---------------------------------------------------------------------------------------------
-- Marking dirty: one statement for any number of robots. Only robots with a live certificate
-- have something to regenerate.

create or replace function gk_private.robots_certificates_dirty(robot_ids uuid[])
returns bigint
language sql volatile
as $$
  with marked as (
    update gk_public.robots r
       set certificate_generation = r.certificate_generation + 1,
           certificate_dirty_since = coalesce(r.certificate_dirty_since, now())
     where r.id = any(robot_ids)
       and exists (select 1 from gk_public.certificates c
                    where c.robot_id = r.id and c.profile = 'robot' and c.status in ('issuing', 'issued'))
    returning 1)
  select count(*) from marked;
$$;
comment on function gk_private.robots_certificates_dirty is 'Marks the robots'' certificates dirty (generation + 1): each gets a replacement at its next certificate read or from the sweep.';

-- A team renamed: every robot of it (O = the team name).
create or replace function gk_private.tg_teams__robot_certificates_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  ids uuid[];
begin
  -- Statement triggers fire for zero rows too: nothing renamed, nothing to do (and no recursion).
  ids := array(select r.id from new_rows n join old_rows o on o.id = n.id join gk_public.robots r on r.team_id = n.id
                where n.name is distinct from o.name);
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$$;
drop trigger if exists _500_robot_certificates_dirty on gk_public.teams;
create trigger _500_robot_certificates_dirty
  after update on gk_public.teams
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_teams__robot_certificates_dirty();

-- A robot renamed (OU = name=<robot name>) or moved to another team (O = the team name; its
-- certificates, issued for the old team, are refused at once by robot_certificate_identity).
create or replace function gk_private.tg_robots__robot_certificates_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  ids uuid[];
begin
  ids := array(select n.id from new_rows n join old_rows o on o.id = n.id
                where (n.name, n.team_id) is distinct from (o.name, o.team_id));
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$$;
drop trigger if exists _500_robot_certificates_dirty on gk_public.robots;
create trigger _500_robot_certificates_dirty
  after update on gk_public.robots
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_robots__robot_certificates_dirty();

-- ECUs added, removed or given another hardware id (hw=…), robots joining or leaving a group, a
-- group renamed (group=…). One trigger per event: transition tables allow only one.
create or replace function gk_private.tg_robot_attributes__robot_certificates_dirty() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  ids uuid[];
begin
  if tg_table_name = 'robot_groups' then
    ids := array(select m.robot_id from new_rows n join old_rows o on o.id = n.id
                   join gk_public.robot_group_members m on m.group_id = n.id where n.name is distinct from o.name);
  elsif tg_op = 'INSERT' then
    ids := array(select distinct n.robot_id from new_rows n);
  elsif tg_op = 'DELETE' then
    ids := array(select distinct o.robot_id from old_rows o);
  elsif tg_table_name = 'ecus' then
    ids := array(select distinct unnest(array[n.robot_id, o.robot_id]) from new_rows n join old_rows o on o.id = n.id
                  where n.hardware_id is distinct from o.hardware_id or n.robot_id is distinct from o.robot_id);
  end if;
  if cardinality(ids) > 0 then
    perform gk_private.robots_certificates_dirty(ids);
  end if;
  return null;
end;
$$;
do $$
declare
  t text;
  ev text;
begin
  foreach t in array array['ecus', 'robot_group_members'] loop
    -- Memberships are inserted and deleted, never updated.
    foreach ev in array case t when 'ecus' then array['insert', 'update', 'delete'] else array['insert', 'delete'] end loop
      execute format('drop trigger if exists _500_robot_certificates_dirty_%s on gk_public.%I', ev, t);
      execute format('create trigger _500_robot_certificates_dirty_%s after %s on gk_public.%I referencing %s '
                     'for each statement execute function gk_private.tg_robot_attributes__robot_certificates_dirty()',
                     ev, ev, t,
                     case ev when 'insert' then 'new table as new_rows' when 'delete' then 'old table as old_rows'
                             else 'old table as old_rows new table as new_rows' end);
    end loop;
  end loop;
end $$;
drop trigger if exists _500_robot_certificates_dirty on gk_public.robot_groups;
create trigger _500_robot_certificates_dirty
  after update on gk_public.robot_groups
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_robot_attributes__robot_certificates_dirty();

-- ---------------------------------------------------------------------------------------------
-- Which certificates are dirty: a robot certificate encoding an older generation than its robot's.

create or replace function gk_private.certificate_is_dirty(id uuid)
returns boolean
language sql stable
as $$
  select coalesce(bool_or(c.subject_generation < r.certificate_generation), false)
    from gk_public.certificates c join gk_public.robots r on r.id = c.robot_id
   where c.id = certificate_is_dirty.id;
$$;

-- The robot's current certificate: its newest issued, unexpired one.
create or replace function gk_private.robot_current_certificate(robot_id uuid)
returns setof gk_public.certificates
language sql stable
as $$
  select c.* from gk_public.certificates c
   where c.robot_id = robot_current_certificate.robot_id and c.profile = 'robot'
     and c.status = 'issued' and c.not_after > now()
   order by c.issued_at desc, c.created_at desc
   limit 1;
$$;

-- Requests replacements for dirty robots (the caller holds their row locks: the certificate
-- read, or the sweep with SKIP LOCKED), through the ordinary request path: an 'issuing'
-- certificate with the current certificate's key (public_keys[i] for robot_ids[i] where the CA
-- had generated it: its SPKI, taken from the PEM by the caller), of the same validity. A robot
-- whose replacement is already on its way gets that one (the partial unique index backs this up
-- against any other caller); a dirty robot with nothing live is simply clean.
create or replace function gk_private.robots_certificate_replacements(robot_ids uuid[], public_keys text[] default null)
returns table (robot_id uuid, certificate_id uuid, requested boolean)
language plpgsql volatile
as $$
#variable_conflict use_column
begin
  -- Robots and replacements are reached per robot (lateral, by primary key and by the replaced
  -- certificate; limit 1 keeps the planner from flattening the probe into a join): right after a
  -- bulk marking, the statistics of gk_public.robots say no robot is dirty, and a join planned on
  -- them scanned robots_certificate_dirty_idx, every robot the marking reached, for each read.
  -- The dirty test is applied to the row the probe found, never given to the planner with it;
  -- the update re-checks the generation instead (a newer marking keeps the robot dirty).
  with bare as (
    select r.id, r.certificate_generation from unnest(robot_ids) u (id)
     cross join lateral (select r.id, r.certificate_generation, r.certificate_dirty_since
                           from gk_public.robots r where r.id = u.id limit 1) r
     where r.certificate_dirty_since is not null
       and not exists (select 1 from gk_public.certificates c
                        where c.robot_id = r.id and c.profile = 'robot' and c.status in ('issuing', 'issued')))
  update gk_public.robots r set certificate_dirty_since = null
    from bare where r.id = bare.id and r.certificate_generation = bare.certificate_generation;
  return query
  with wanted as (
    select r.id as robot_id, r.team_id, r.certificate_generation, cur.id as current_id,
           coalesce(cur.public_key_pem, k.public_key) as public_key_pem,
           case when cur.public_key_pem is null and k.public_key is null then cur.csr_pem end as csr_pem,
           least(greatest(cur.not_after - cur.issued_at, interval '1 hour'), interval '10 years') as valid_for
      from unnest(robot_ids, coalesce(public_keys, array_fill(null::text, array[cardinality(robot_ids)]))) as k(robot_id, public_key)
      cross join lateral (select r.id, r.team_id, r.certificate_generation, r.certificate_dirty_since
                            from gk_public.robots r where r.id = k.robot_id limit 1) r
      cross join lateral gk_private.robot_current_certificate(r.id) cur
     where r.certificate_dirty_since is not null and cur.subject_generation < r.certificate_generation),
  pending as (
    select w.robot_id, x.id
      from wanted w
      cross join lateral (select x.id from gk_public.certificates x
                           where x.replaces_certificate_id = w.current_id and x.status in ('issuing', 'issued') limit 1) x),
  inserted as (
    insert into gk_public.certificates (owner_team_id, robot_id, profile, public_key_pem, csr_pem, not_after, replaces_certificate_id)
    select w.team_id, w.robot_id, 'robot', w.public_key_pem, w.csr_pem, date_trunc('second', now() + w.valid_for), w.current_id
      from wanted w
     where not exists (select 1 from pending p where p.robot_id = w.robot_id)
       and (w.public_key_pem is not null or w.csr_pem is not null)
    on conflict (replaces_certificate_id) where replaces_certificate_id is not null and status in ('issuing', 'issued')
    do nothing
    returning gk_public.certificates.robot_id, gk_public.certificates.id)
  select i.robot_id, i.id, true from inserted i
  union all
  select p.robot_id, p.id, false from pending p;
end;
$$;

-- A replacement issued for the robot's current generation makes the robot clean; one that
-- raced a newer change (an older generation) leaves it dirty, and the next read replaces it.
create or replace function gk_private.tg_certificates__robot_regenerated() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  replaced uuid[];
begin
  -- Statement triggers fire for zero rows too (also for the UPDATE below): only act on rows.
  -- Every update of a certificate comes here, so the robots are reached per issued row (lateral,
  -- by primary key, as robots_certificate_replacements does): a join planned on statistics from
  -- before a bulk marking scanned every dirty robot for each update of any certificate.
  -- The update re-checks the generation on the row it updates: a marking that raced this issue
  -- (generation + 1, committed meanwhile) keeps the robot dirty.
  with clean as (
    select r.id, n.subject_generation from new_rows n join old_rows o on o.id = n.id
     cross join lateral (select r.id, r.certificate_generation, r.certificate_dirty_since
                           from gk_public.robots r where r.id = n.robot_id limit 1) r
     where n.status = 'issued' and o.status = 'issuing'
       and n.subject_generation = r.certificate_generation and r.certificate_dirty_since is not null)
  update gk_public.robots r set certificate_dirty_since = null
    from clean where r.id = clean.id and r.certificate_generation = clean.subject_generation;
  -- Downloaded: the certificates it replaces (the whole chain) are superseded now.
  replaced := array(
    with recursive chain(id) as (
      select n.replaces_certificate_id from new_rows n join old_rows o on o.id = n.id
       where n.downloaded_at is not null and o.downloaded_at is null and n.replaces_certificate_id is not null
      union
      select c.replaces_certificate_id from gk_public.certificates c join chain on c.id = chain.id
       where c.replaces_certificate_id is not null)
    select id from chain);
  if cardinality(replaced) > 0 then
    update gk_public.certificates c set status = 'revoking', revocation_reason = 'superseded'
     where c.id = any(replaced) and c.status in ('issuing', 'issued');
  end if;
  return null;
end;
$$;
drop trigger if exists _530_robot_regenerated on gk_public.certificates;
create trigger _530_robot_regenerated
  after update on gk_public.certificates
  referencing old table as old_rows new table as new_rows
  for each statement execute function gk_private.tg_certificates__robot_regenerated();

-- The sweep's batch: dirty robots, oldest first, locked (SKIP LOCKED: a read or another sweep
-- holding one goes on with it), with what is needed to reuse the current certificate's key.
create or replace function gk_private.robots_certificates_due(max_robots int)
returns table (robot_id uuid, has_key boolean, pem text)
language sql volatile
as $$
  with due as (
    select r.id from gk_public.robots r
     where r.certificate_dirty_since is not null
       -- A replacement on its way: nothing to request until it is issued.
       and not exists (select 1 from gk_public.certificates x
                        where x.robot_id = r.id and x.replaces_certificate_id is not null and x.status = 'issuing')
     order by r.certificate_dirty_since
     limit max_robots
     for update of r skip locked)
  select d.id, cur.public_key_pem is not null or cur.csr_pem is not null, cur.pem
    from due d left join lateral gk_private.robot_current_certificate(d.id) cur on true;
$$;

-- Replaced certificates whose replacement was issued longer than `grace` ago and never
-- downloaded: revoked as superseded now (the robot that never came back re-enrols).
create or replace function gk_private.robots_certificates_supersede(grace interval, max_rows int)
returns bigint
language sql volatile
as $$
  with doomed as (
    select old.id from gk_public.certificates n join gk_public.certificates old on old.id = n.replaces_certificate_id
     where n.status = 'issued' and n.issued_at < now() - grace and old.status in ('issuing', 'issued')
     order by n.issued_at
     limit max_rows
     for update of old skip locked),
  revoked as (
    update gk_public.certificates c set status = 'revoking', revocation_reason = 'superseded'
      from doomed where c.id = doomed.id
    returning 1)
  select count(*) from revoked;
$$;

-- ---------------------------------------------------------------------------------------------
-- Compromise is never lazy: every live certificate of the robot goes to revocation now.
create or replace function gk_public.revoke_robot_certificates(robot_id uuid, reason text default 'keyCompromise')
returns bigint
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
declare
  n bigint;
begin
  if not exists (select 1 from gk_public.robots r where r.id = revoke_robot_certificates.robot_id) then
    raise exception 'robot % not found', revoke_robot_certificates.robot_id using errcode = 'P0002';
  end if;
  if reason is null or reason not in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation') then
    raise exception 'reason must be unspecified, keyCompromise, superseded or cessationOfOperation (got %)', coalesce(reason, 'null')
      using errcode = '22023';
  end if;
  with revoked as (
    update gk_public.certificates c set status = 'revoking', revocation_reason = revoke_robot_certificates.reason
     where c.robot_id = revoke_robot_certificates.robot_id and c.status in ('issuing', 'issued')
    returning 1)
  select count(*) into n from revoked;
  return n;
end;
$$;
comment on function gk_public.revoke_robot_certificates is 'Revokes every live certificate of a robot now (a compromised robot): refused by the robot API at once, revoked at the CA by a task.';
