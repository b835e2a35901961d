-- Up Migration
-- A repository must not stall unseen, nor be configured so that it cannot be kept valid:
-- 1. a failing publish is recorded on the repository row (src/tuf/publish.ts publishTeam:
--    gk_private.tuf_publish_failed / tuf_publish_succeeded), shown by tuf_repository_status,
--    `groundskeeper status` and the gk_tuf_publish_* metrics, besides the job's own retries;
-- 2. lifetimes are bounded so every publish can sign them (JavaScript dates end in the year
--    275760) and so the resigner can keep them: it runs every 5 minutes (crontab tuf__resign;
--    test/tuf/lifetimes.test.ts keeps the two in step), marks a role once it expires within
--    resign_window, and the publish follows after publish_delay. So the window must cover a
--    sweep interval, the publish delay and a margin, and every lifetime must exceed the window by
--    two sweep intervals (otherwise a freshly signed role is due again at the next sweep).
alter table gk_public.tuf_repositories
  add column last_publish_error text check (length(last_publish_error) <= 2000),
  add column publish_failing_since timestamptz,
  add column publish_failures int not null default 0 check (publish_failures >= 0),
  add column last_published_at timestamptz,
  add constraint tuf_repositories_failing_check check ((publish_failing_since is null) = (last_publish_error is null));

create function gk_private.tuf_resign_interval() returns interval
language sql immutable parallel safe
as $$ select interval '5 minutes' $$;

create function gk_private.tuf_lifetimes_problem(
  targets interval, bins interval, snapshot interval, timestamp_ interval, resign_window interval, publish_delay interval
) returns text
language sql immutable parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
  select case
    when greatest(targets, bins, snapshot, timestamp_) > interval '10 years'
      then 'lifetimes must be at most 10 years'
    when publish_delay < interval '0' or publish_delay > interval '1 hour'
      then 'publish_delay must be between 0 and 1 hour'
    when resign_window < gk_private.tuf_resign_interval() * 2 + publish_delay
      then format('resign_window %s is too short: the resign sweep runs every %s, so it must be at least %s (two sweeps plus publish_delay)',
                  resign_window, gk_private.tuf_resign_interval(), gk_private.tuf_resign_interval() * 2 + publish_delay)
    when least(targets, bins, snapshot, timestamp_) < resign_window + gk_private.tuf_resign_interval() * 2
      then format('every lifetime must be at least resign_window + %s (%s), the shortest is %s',
                  gk_private.tuf_resign_interval() * 2, resign_window + gk_private.tuf_resign_interval() * 2,
                  least(targets, bins, snapshot, timestamp_))
  end
$$;

alter table gk_public.tuf_repositories
  add constraint tuf_repositories_lifetimes_check check (gk_private.tuf_lifetimes_problem(
    targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay) is null);

-- Down Migration
drop trigger if exists _100_check_lifetimes on gk_public.tuf_repositories;
drop function if exists gk_private.tg_tuf_repositories__check_lifetimes();
drop function if exists gk_private.tuf_publish_failed(uuid, text);
drop function if exists gk_private.tuf_publish_succeeded(uuid);
alter table gk_public.tuf_repositories drop constraint tuf_repositories_lifetimes_check;
drop function gk_private.tuf_lifetimes_problem(interval, interval, interval, interval, interval, interval);
drop function gk_private.tuf_resign_interval();
-- The status view selects the new columns: it is re-created by sql/400_tuf.sql.
drop view if exists gk_public.tuf_repository_status;
alter table gk_public.tuf_repositories
  drop constraint tuf_repositories_failing_check,
  drop column last_published_at,
  drop column publish_failures,
  drop column publish_failing_since,
  drop column last_publish_error;
