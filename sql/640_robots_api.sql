-- The robot API's stored logic: who a presented certificate is (every request asks, so a revoked
-- or superseded certificate is refused at once), and what a robot may write (its own rows only:
-- the robot and team come from the identity, never from the request body).

-- The robot a certificate serial authenticates: a robot certificate, issued and unexpired, whose
-- robot still exists and is still in the team the certificate was issued for. No row: refuse.
create or replace function gk_private.robot_certificate_identity(serial text)
returns table (certificate_id uuid, robot_id uuid, team_id uuid)
language sql stable
as $$
  select c.id, r.id, r.team_id
    from gk_public.certificates c
    join gk_public.robots r on r.id = c.robot_id and r.team_id = c.owner_team_id
   where c.serial = robot_certificate_identity.serial
     and c.profile = 'robot'
     and c.status = 'issued'
     and c.not_after > now();
$$;

-- A manifest a robot reported (src/robots/robot-routes.ts), stored only once its signatures
-- verified against the ECUs' registered keys (src/robots/manifest.ts): `valid` is then true.
-- Retention prunes them (robot_manifests).
create or replace function gk_private.robot_manifest_received(robot_id uuid, team_id uuid, valid boolean, body jsonb)
returns gk_public.robot_manifests
language sql volatile
as $$
  insert into gk_public.robot_manifests (robot_id, team_id, valid, body)
  select r.id, r.team_id, robot_manifest_received.valid, robot_manifest_received.body
    from gk_public.robots r
   where r.id = robot_manifest_received.robot_id and r.team_id = robot_manifest_received.team_id
  returning *;
$$;

-- The registered keys of a robot's ECUs, for checking its manifest's signatures.
create or replace function gk_private.robot_ecu_keys(robot_id uuid)
returns table (serial text, is_primary boolean, public_key text)
language sql stable
as $$
  select e.serial, e.is_primary, k.public_key
    from gk_public.ecus e left join gk_public.ecu_keys k on k.ecu_id = e.id
   where e.robot_id = robot_ecu_keys.robot_id
   order by e.serial
   limit 1000;
$$;

-- ECU keys are registered and replaced by an admin only.
grant insert (ecu_id, team_id, public_key), update (public_key), delete on gk_public.ecu_keys to gk_admin;

-- ---------------------------------------------------------------------------------------------
-- Verified manifests against the director: replay check, comparison with the director's
-- targets, and what a report of the rollout's image means for the robot's rollout row.

-- How far a version report's time may be from the server's clock, either way.
create or replace function gk_private.robot_manifest_max_skew() returns interval
language sql immutable parallel safe
as $$ select interval '5 minutes' $$;

-- An ECU's report counter never goes back, nor its report time, whoever writes the row.
create or replace function gk_private.tg_ecu_version_reports__counter_increases() returns trigger
language plpgsql volatile
set search_path to pg_catalog, pg_temp
as $$
begin
  if new.report_counter <= old.report_counter or new.reported_at < old.reported_at then
    raise exception 'ECU %: report counter % (time %) does not follow the accepted % (time %)',
      old.ecu_id, new.report_counter, new.reported_at, old.report_counter, old.reported_at using errcode = '55000';
  end if;
  return new;
end;
$$;
drop trigger if exists _100_counter_increases on gk_public.ecu_version_reports;
create trigger _100_counter_increases before update of report_counter, reported_at on gk_public.ecu_version_reports
  for each row execute function gk_private.tg_ecu_version_reports__counter_increases();

-- The rows robot_manifest_accepted works on, kept in a jsonb value between its statements.
drop function if exists gk_private.robot_manifest_reports(jsonb); -- its columns changed (time_given)
create function gk_private.robot_manifest_reports(reports jsonb)
returns table (ecu_id uuid, serial text, counter bigint, reported_at timestamptz, time_given boolean, filepath text, length bigint,
               sha256 text, sha512 text, last_counter bigint, last_reported_at timestamptz)
language sql immutable parallel safe
as $$
  select * from jsonb_to_recordset(reports) as r (
    ecu_id uuid, serial text, counter bigint, reported_at timestamptz, time_given boolean, filepath text, length bigint,
    sha256 text, sha512 text, last_counter bigint, last_reported_at timestamptz)
$$;

-- A manifest whose signatures verified (src/robots/manifest.ts), with its version reports
-- [{serial, counter, time, filepath, length, sha256, sha512}] as parsed there. In one
-- transaction, all or nothing:
--  1. every report's ECU is one of this robot's (robot and team from the identity);
--  2. the replay check: each report's counter is above, and its time not before, the last
--     accepted report of its ECU (55000 otherwise), and a time the report carries is within
--     robot_manifest_max_skew() of now (22023); a report without one is taken at now (never
--     before the last accepted), so the counter alone carries the check;
--  3. each report is compared with what the director's targets list for its ECU
--     (gk_private.director_targets, what the robot's next signed targets say): matches, pending
--     (a rollout lists an image the ECU has not installed and it still runs what it ran) or
--     discrepancy (an image the director's targets do not assign it);
--  4. a report that matches a rollout's image is that ECU's installation_completed event, through
--     the event path itself (gk_private.rollouts_record_event), under an event id made of the
--     rollout, the ECU and the image, so it is recorded once however often it is reported; a
--     discrepancy completes nothing;
--  5. the manifest is stored (robot_manifest_received) and each ECU's report state replaced.
-- Manifests of one robot are taken one at a time (an advisory lock taken before anything else,
-- so the event path's lock order, rollout row then ECU, holds). Returns
-- {id, received_at, ecus: [{serial, verdict, detail, expected, rollout_id, event}]}, or null when
-- the robot is not in that team any more.
create or replace function gk_private.robot_manifest_accepted(p_robot_id uuid, p_team_id uuid, p_body jsonb, p_reports jsonb)
returns jsonb
language plpgsql volatile
set search_path to pg_catalog, pg_temp
set jit to off
as $$
declare
  v_manifest gk_public.robot_manifests;
  v_bad record;
  v_row record;
  v_event text;
  v_results jsonb := '[]'::jsonb;
  v_reports jsonb;
begin
  if p_reports is null or jsonb_typeof(p_reports) <> 'array' or jsonb_array_length(p_reports) not between 1 and 256 then
    raise exception 'a manifest carries 1 to 256 version reports' using errcode = '22023';
  end if;
  perform pg_advisory_xact_lock(hashtextextended('robot_manifest:' || p_robot_id::text, 0));
  if not exists (select 1 from gk_public.robots r where r.id = p_robot_id and r.team_id = p_team_id) then
    return null;
  end if;

  -- The reports with their ECU and its last accepted report, read once (no temp table: its
  -- catalog writes cost more than the rest of the check).
  select coalesce(jsonb_agg(jsonb_build_object(
           'ecu_id', e.id, 'serial', x.serial, 'counter', x.counter, 'filepath', x.filepath,
           -- A report without a time (aktualizr's) is taken at the time it is received, never
           -- before the ECU's last accepted one; only a time the report carries is checked.
           'reported_at', coalesce(x.time, greatest(now(), s.reported_at)), 'time_given', x.time is not null,
           'length', x.length, 'sha256', x.sha256, 'sha512', x.sha512,
           'last_counter', s.report_counter, 'last_reported_at', s.reported_at) order by x.serial), '[]'::jsonb)
    into v_reports
    from jsonb_to_recordset(p_reports) as x (serial text, counter bigint, time timestamptz, filepath text, length bigint,
                                             sha256 text, sha512 text)
    left join gk_public.ecus e on e.robot_id = p_robot_id and e.team_id = p_team_id and e.serial = x.serial
    left join gk_public.ecu_version_reports s on s.ecu_id = e.id;

  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r where r.ecu_id is null order by r.serial limit 1;
  if found then
    raise exception 'ECU % is not an ECU of this robot', v_bad.serial using errcode = 'P0002';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.counter is null or r.filepath is null or r.length is null
   limit 1;
  if found then
    raise exception 'version report of ECU % lacks its counter or installed image', v_bad.serial using errcode = '22023';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.counter <= r.last_counter or r.reported_at < r.last_reported_at
   order by r.serial limit 1;
  if found then
    if v_bad.counter <= v_bad.last_counter then
      raise exception 'replayed manifest: ECU %''s report_counter % is not above the last accepted %', v_bad.serial, v_bad.counter, v_bad.last_counter
        using errcode = '55000';
    end if;
    raise exception 'replayed manifest: ECU %''s report time % is before the last accepted %', v_bad.serial,
      to_char(v_bad.reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      to_char(v_bad.last_reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') using errcode = '55000';
  end if;
  select * into v_bad from gk_private.robot_manifest_reports(v_reports) r
   where r.time_given
     and r.reported_at not between now() - gk_private.robot_manifest_max_skew() and now() + gk_private.robot_manifest_max_skew()
   order by r.serial limit 1;
  if found then
    raise exception 'ECU %''s report time % is more than % from the server''s clock (%)', v_bad.serial,
      to_char(v_bad.reported_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), gk_private.robot_manifest_max_skew(),
      to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') using errcode = '22023';
  end if;

  v_manifest := gk_private.robot_manifest_received(p_robot_id, p_team_id, true, p_body);

  for v_row in
    with targets as (
      select t.ecu_serial, t.rollout_id, t.image_name || '-' || t.image_version as filepath, t.length, t.sha256, t.sha512, i.id as image_id
        from gk_private.director_targets(array[p_robot_id]) t
        -- Per target (lateral, by images_team_name_version_key): planned as a join on the 1,000
        -- rows estimated for director_targets, it was a scan of the team's every image.
        cross join lateral (select i.id from gk_public.images i
                             where i.team_id = p_team_id and i.name = t.image_name and i.version = t.image_version limit 1) i
    ), compared as (
      select r.*, t.rollout_id, t.image_id as expected_image_id, t.filepath as expected,
             t.filepath is not null and r.filepath = t.filepath and r.length = t.length
               and (r.sha256 is null or r.sha256 = t.sha256) and (r.sha512 is null or r.sha512 = t.sha512) as matches,
             ii.id is not null and r.filepath = ii.name || '-' || ii.version and r.length = ii.length
               and (r.sha256 is null or r.sha256 = ii.sha256) and (r.sha512 is null or r.sha512 = ii.sha512) as runs_installed
        from gk_private.robot_manifest_reports(v_reports) r
        -- The reports' ECUs per report (lateral, by primary key; limit 1 keeps it a probe):
        -- planned as a join on the 100 rows estimated for the reports, it was a scan of every
        -- ECU of the fleet for each manifest.
        cross join lateral (select e.installed_image_id, e.team_id from gk_public.ecus e where e.id = r.ecu_id limit 1) e
        left join targets t on t.ecu_serial = r.serial
        left join gk_public.images ii on ii.id = e.installed_image_id and ii.team_id = e.team_id
    )
    select c.*, case when c.matches then 'matches' when c.rollout_id is not null and c.runs_installed then 'pending' else 'discrepancy' end as verdict
      from compared c order by c.serial
  loop
    v_event := null;
    if v_row.verdict = 'matches' and v_row.rollout_id is not null then
      v_event := gk_private.rollouts_record_event(
        p_robot_id, md5(format('manifest installed %s %s %s', v_row.rollout_id, v_row.ecu_id, v_row.expected_image_id))::uuid,
        v_row.serial, 'installation_completed', format('reported installed in manifest %s', v_manifest.id));
    end if;
    insert into gk_public.ecu_version_reports as s (
      ecu_id, team_id, report_counter, reported_at, received_at, manifest_id, reported_filepath, reported_length,
      reported_sha256, reported_sha512, expected_image_id, rollout_id, verdict, detail)
    values (
      v_row.ecu_id, p_team_id, v_row.counter, v_row.reported_at, v_manifest.received_at, v_manifest.id, v_row.filepath, v_row.length,
      v_row.sha256, v_row.sha512, v_row.expected_image_id, v_row.rollout_id, v_row.verdict,
      left(case v_row.verdict
        when 'matches' then format('runs %s, as the director''s targets list', v_row.expected)
        when 'pending' then format('still runs %s; rollout %s lists %s', v_row.filepath, v_row.rollout_id, v_row.expected)
        else format('reports %s (%s bytes), which the director''s targets do not assign it; they list %s', v_row.filepath, v_row.length,
                    coalesce(v_row.expected, 'nothing for this ECU')) end, 1000))
    on conflict (ecu_id) do update set
      report_counter = excluded.report_counter, reported_at = excluded.reported_at, received_at = excluded.received_at,
      manifest_id = excluded.manifest_id, reported_filepath = excluded.reported_filepath, reported_length = excluded.reported_length,
      reported_sha256 = excluded.reported_sha256, reported_sha512 = excluded.reported_sha512,
      expected_image_id = excluded.expected_image_id, rollout_id = excluded.rollout_id, verdict = excluded.verdict, detail = excluded.detail;
    v_results := v_results || jsonb_build_object('serial', v_row.serial, 'verdict', v_row.verdict, 'expected', v_row.expected,
                                                 'rollout_id', v_row.rollout_id, 'event', v_event,
                                                 'detail', (select s.detail from gk_public.ecu_version_reports s where s.ecu_id = v_row.ecu_id));
  end loop;
  return jsonb_build_object('id', v_manifest.id::text, 'received_at', v_manifest.received_at, 'ecus', v_results);
end;
$$;
comment on function gk_private.robot_manifest_accepted is 'A verified manifest: replay check, comparison with the director''s targets, the rollout''s installation through rollouts_record_event; stored with each ECU''s report state.';

comment on table gk_public.ecu_version_reports is E'@behavior -insert -update -delete\nThe last accepted version report of each ECU: its counter and time (a later manifest must exceed them), what it reports installed, and how that compares with the director''s targets (matches, pending, discrepancy).';
