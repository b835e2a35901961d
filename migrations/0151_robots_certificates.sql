-- Up Migration
-- Robot certificates, regenerated lazily (after Candlepin's dirty entitlements). A robot
-- certificate encodes more than its robot's id: its team's name (O) and the robot's name (an
-- OU), `certificates.subject`. A change to those bumps the robot's certificate_generation and
-- sets certificate_dirty_since, for every affected robot in one statement; the robot's next
-- certificate read (or the sweep, tasks/robots__regenerate.ts) requests a replacement, which
-- records the generation it encodes, so a regeneration racing a newer change leaves the robot
-- dirty. The replaced certificate is revoked once the replacement is downloaded, or after a
-- grace period. Stored logic: sql/630_robots_certificates.sql.

alter table gk_public.robots
  add column certificate_generation bigint not null default 0 check (certificate_generation >= 0),
  -- Set while the robot's live certificate encodes less than its current generation.
  add column certificate_dirty_since timestamptz;
-- Behind the sweep: dirty robots, oldest first.
create index robots_certificate_dirty_idx on gk_public.robots (certificate_dirty_since) where certificate_dirty_since is not null;

alter table gk_public.certificates
  -- The subject beyond CN and OU = profile, as the CA is asked to write it (SubjectExtra in
  -- src/adapters/ca/types.ts); NULL for certificates that encode nothing more.
  add column subject jsonb check (subject is null or jsonb_typeof(subject) = 'object'),
  -- The owner's certificate_generation the subject was taken at.
  add column subject_generation bigint check (subject_generation >= 0),
  -- The certificate this one replaces (a regeneration): revoked as superseded once this one is
  -- downloaded, or after the grace period.
  add column replaces_certificate_id uuid references gk_public.certificates (id) on delete set null,
  add constraint certificates_replaces_other check (replaces_certificate_id <> id);
create index certificates_replaces_certificate_id_idx on gk_public.certificates (replaces_certificate_id);
-- One pending replacement per certificate: concurrent reads and the sweep request it once.
create unique index certificates_one_replacement_idx on gk_public.certificates (replaces_certificate_id)
  where replaces_certificate_id is not null and status in ('issuing', 'issued');
comment on column gk_public.certificates.subject is 'What the certificate encodes besides its owner and profile (robots: O = team name, OU = name=<robot name>).';

-- The deferred local CA signs later: it keeps the requested subject until then.
alter table gk_private.local_ca_certificates add column subject jsonb;

-- Down Migration
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private') and (p.proname ~ '^robots?_certificates?_' or p.proname ~ '^tg_[a-z_]+__robot_'
                   or p.proname in ('certificate_is_dirty', 'robot_current_certificate', 'revoke_robot_certificates'))
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
alter table gk_private.local_ca_certificates drop column subject;
drop index if exists gk_public.certificates_one_replacement_idx;
alter table gk_public.certificates
  drop constraint certificates_replaces_other,
  drop column replaces_certificate_id,
  drop column subject_generation,
  drop column subject;
drop index if exists gk_public.robots_certificate_dirty_idx;
alter table gk_public.robots drop column certificate_dirty_since, drop column certificate_generation;
