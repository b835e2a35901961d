-- Retention: the sweep (tasks/retention__sweep.ts) calls gk_private.retention_prune__<kind>(cutoff,
-- max_rows) for every row of gk_public.retention_policies (the registry: a kind is a policy row,
-- added by its area's migration, and the function, defined in its area's sql/ file). Each call
-- removes at most max_rows (the policy's max_per_activation) and returns how many it removed; when
-- that is the limit, more remains and the sweep says so. Telemetry lives in daily range
-- partitions, so its retention drops whole partitions; a default partition catches strays and is
-- pruned by rows.

create or replace function gk_private.telemetry_partition_name(day date) returns text
language sql immutable strict
as $$
  select 'ecu_telemetry_p' || to_char(day, 'YYYYMMDD');
$$;

-- Creates the daily partitions from `from_day` for `days` days (idempotent). Rows already sitting
-- in the default partition for such a day are moved into the new partition.
create or replace function gk_private.ensure_telemetry_partitions(from_day date default (now() at time zone 'utc')::date, days int default 7)
returns int
language plpgsql volatile
as $$
declare
  d date;
  v_name text;
  v_created int := 0;
begin
  for d in select generate_series(from_day, from_day + (days - 1), interval '1 day')::date loop
    v_name := gk_private.telemetry_partition_name(d);
    continue when to_regclass('gk_private.' || v_name) is not null;
    -- Strays for this day in the default partition would make ATTACH fail: move them.
    create temp table if not exists gk_telemetry_strays (like gk_public.ecu_telemetry) on commit drop;
    with moved as (
      delete from gk_private.ecu_telemetry_default t
       where t.recorded_at >= d::timestamp at time zone 'utc' and t.recorded_at < (d + 1)::timestamp at time zone 'utc'
      returning t.*)
    insert into gk_telemetry_strays select * from moved;
    execute format('create table gk_private.%I partition of gk_public.ecu_telemetry for values from (%L) to (%L)',
                   v_name, d::timestamp at time zone 'utc', (d + 1)::timestamp at time zone 'utc');
    insert into gk_public.ecu_telemetry select * from gk_telemetry_strays;
    truncate gk_telemetry_strays;
    v_created := v_created + 1;
  end loop;
  return v_created;
end;
$$;

-- Daily partitions that end at or before the cutoff are dropped whole, oldest first, until
-- max_rows rows are gone (a partition is never split: the one that crosses the limit goes whole);
-- then older rows of the default partition, up to what is left of max_rows.
drop function if exists gk_private.retention_prune__ecu_telemetry(timestamptz);
create or replace function gk_private.retention_prune__ecu_telemetry(cutoff timestamptz, max_rows int) returns bigint
language plpgsql volatile
as $$
declare
  r record;
  v_rows bigint := 0;
  v_n bigint;
begin
  for r in
    select c.relname, to_date(substring(c.relname from 'ecu_telemetry_p(\d{8})$'), 'YYYYMMDD') as day
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_namespace n on n.oid = c.relnamespace
     where i.inhparent = 'gk_public.ecu_telemetry'::regclass and n.nspname = 'gk_private'
       and c.relname ~ '^ecu_telemetry_p\d{8}$'
     order by 1
  loop
    exit when v_rows >= max_rows;
    continue when (r.day + 1)::timestamp at time zone 'utc' > cutoff;
    execute format('select count(*) from gk_private.%I', r.relname) into v_n;
    execute format('drop table gk_private.%I', r.relname);
    v_rows := v_rows + v_n;
  end loop;
  if v_rows < max_rows then
    with doomed as (
      select t.ctid from gk_private.ecu_telemetry_default t where t.recorded_at < cutoff limit max_rows - v_rows),
    gone as (delete from gk_private.ecu_telemetry_default t using doomed d where t.ctid = d.ctid returning 1)
    select v_rows + count(*) into v_rows from gone;
  end if;
  return v_rows;
end;
$$;

drop function if exists gk_private.retention_prune__robot_manifests(timestamptz);
create or replace function gk_private.retention_prune__robot_manifests(cutoff timestamptz, max_rows int) returns bigint
language sql volatile
as $$
  with doomed as (
    select m.id from gk_public.robot_manifests m where m.received_at < cutoff order by m.received_at limit max_rows),
  gone as (delete from gk_public.robot_manifests m using doomed d where m.id = d.id returning 1)
  select count(*) from gone;
$$;

-- Retention kinds the sweep can call (a policy without its function is reported, not skipped).
create or replace function gk_private.retention_prune_function(kind text) returns regprocedure
language sql stable
as $$
  select to_regprocedure(format('gk_private.%I(timestamptz, integer)', 'retention_prune__' || kind));
$$;

comment on table gk_public.robot_manifests is E'@behavior -insert -update -delete\nSigned manifests reported by robots; pruned by the retention sweep.';
comment on table gk_public.ecu_telemetry is E'@behavior -insert -update -delete\nECU events from robots, partitioned by day; retention drops whole partitions.';
grant select on gk_public.robot_manifests, gk_public.ecu_telemetry to gk_viewer, gk_admin;
grant update (retention, max_per_activation) on gk_public.retention_policies to gk_admin;

-- Bootstrap: yesterday through a week ahead (the daily cron keeps creating ahead of time).
select gk_private.ensure_telemetry_partitions((now() at time zone 'utc')::date - 1, 9);

-- Prunes one kind with its policy's cutoff and limit (the sweep calls this for every policy
-- row). Returns what was removed and whether more remains for the next activation.
drop function if exists gk_private.retention_prune(text);
create or replace function gk_private.retention_prune(kind text, out deleted bigint, out max_rows int, out more boolean)
language plpgsql volatile
as $$
declare
  v_policy gk_public.retention_policies;
  v_fn regprocedure;
begin
  select * into v_policy from gk_public.retention_policies p where p.kind = retention_prune.kind;
  if not found then
    raise exception 'no retention policy for kind %', kind using errcode = 'P0002';
  end if;
  v_fn := gk_private.retention_prune_function(kind);
  if v_fn is null then
    raise exception 'retention kind % has no function gk_private.retention_prune__%(timestamptz, integer)', kind, kind
      using errcode = '42883';
  end if;
  max_rows := v_policy.max_per_activation;
  execute format('select %s($1, $2)', v_fn::oid::regproc) into deleted using now() - v_policy.retention, max_rows;
  deleted := coalesce(deleted, 0);
  more := deleted >= max_rows;
end;
$$;
