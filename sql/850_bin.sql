-- The bin: every pending deletion of every registered kind in one view, and its summary per kind.
-- Generated from the registry (gk_public.bin_kinds): one UNION ALL branch per kind's view
-- gk_private.bin__<kind>. A plain view (not a set-returning function) so filters on kind, ref or
-- team_id reach each branch's own indexes. Late in the order because the kinds' views read every
-- area's tables; regenerated whenever a kind's file changes (stored logic re-applies from there).

do $$
declare
  v_branches text;
begin
  select string_agg(format(
           'select %L::text as kind, b.ref, b.team_id, b.enqueued_at, now() - b.enqueued_at as age, b.attempts, b.last_error, b.next_attempt_at, coalesce(b.next_attempt_at < now(), false) as overdue from gk_private.%I b',
           k.kind, 'bin__' || k.kind), E'\n  union all\n  ' order by k.kind)
    into v_branches
    from gk_public.bin_kinds k;
  if exists (select 1 from gk_public.bin_kinds k where to_regclass(format('gk_private.%I', 'bin__' || k.kind)) is null) then
    raise exception 'bin kinds without their view gk_private.bin__<kind>: %',
      (select string_agg(k.kind, ', ') from gk_public.bin_kinds k where to_regclass(format('gk_private.%I', 'bin__' || k.kind)) is null);
  end if;
  execute 'create or replace view gk_public.bin as ' || coalesce(v_branches,
    'select null::text as kind, null::text as ref, null::uuid as team_id, null::timestamptz as enqueued_at, null::interval as age, null::int as attempts, null::text as last_error, null::timestamptz as next_attempt_at, null::boolean as overdue where false');
end $$;
comment on view gk_public.bin is E'@primaryKey kind,ref\nEvery pending deletion (certificate revocations, blob prefixes...) with its age and last error. Its length goes to zero. Overdue: past its lease or next attempt, so no live task holds it and nobody recorded why (a dead worker, a CA or store that took the worker down with it).';

-- Length and oldest age per kind with pending items: the bin metrics (which report 0 for every
-- other registered kind) and `groundskeeper status`.
create or replace view gk_public.bin_summary as
  select kind, count(*)::int as length, min(enqueued_at) as oldest_enqueued_at,
         extract(epoch from now() - min(enqueued_at))::double precision as oldest_age_seconds,
         count(*) filter (where last_error is not null)::int as failing,
         count(*) filter (where overdue)::int as overdue
    from gk_public.bin
   group by kind;
comment on view gk_public.bin_summary is 'Per kind: how many deletions are pending, the oldest one''s age, how many are failing and how many are overdue (past their lease with no live task).';

grant select on gk_public.bin, gk_public.bin_summary to gk_viewer, gk_admin;
