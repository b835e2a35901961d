-- The bin: every pending deletion of every area in one view, and its summary per kind. Late in
-- the order because it reads every area's tables.

create or replace view gk_public.bin as
  select 'certificate'::text as kind,
         c.id::text as ref,
         c.owner_team_id as team_id,
         c.revoke_requested_at as enqueued_at,
         now() - c.revoke_requested_at as age,
         c.attempts,
         c.last_error,
         c.next_attempt_at
    from gk_public.certificates c
   where c.status = 'revoking'
  union all
  select p.kind, p.ref, p.team_id, p.enqueued_at, now() - p.enqueued_at, p.attempts, p.last_error, p.next_attempt_at
    from gk_public.purge_items p
   where p.completed_at is null;
comment on view gk_public.bin is E'@primaryKey kind,ref\nEvery pending deletion (certificate revocations, blob prefixes...) with its age and last error. Its length goes to zero.';

-- Length and oldest age per kind: the bin metrics and `groundskeeper status`.
create or replace view gk_public.bin_summary as
  select kind, count(*)::int as length, min(enqueued_at) as oldest_enqueued_at,
         extract(epoch from now() - min(enqueued_at))::double precision as oldest_age_seconds,
         count(*) filter (where last_error is not null)::int as failing
    from gk_public.bin
   group by kind;
comment on view gk_public.bin_summary is 'Per kind: how many deletions are pending, the oldest one''s age, and how many are failing.';

grant select on gk_public.bin, gk_public.bin_summary to gk_viewer, gk_admin;
