-- The admin API's audit log (table gk_public.audit_events, migration 0080): the recorder the
-- server calls after each mutation, and its retention kind.

create or replace function gk_private.audit_record(
  token_id uuid, token_name text, role text, operation text, operation_name text,
  fields text[], arguments jsonb, outcome text, error text, duration_ms int)
returns bigint
language sql volatile
-- The server calls it as gk_api (sql/920_api_role.sql), which may not write audit_events itself.
security definer set search_path = pg_catalog, pg_temp
as $$
  insert into gk_public.audit_events (token_id, token_name, role, operation, operation_name, fields, arguments, outcome, error, duration_ms)
  values (audit_record.token_id, audit_record.token_name, audit_record.role, audit_record.operation, audit_record.operation_name,
          audit_record.fields, audit_record.arguments, audit_record.outcome, left(audit_record.error, 2000), audit_record.duration_ms)
  returning id;
$$;
comment on function gk_private.audit_record is 'Records one admin API mutation in gk_public.audit_events (called by the server, src/server/audit.ts).';

-- Retention kind audit_events: events older than the cutoff go, oldest first, at most max_rows.
drop function if exists gk_private.retention_prune__audit_events(timestamptz);
create or replace function gk_private.retention_prune__audit_events(cutoff timestamptz, max_rows int) returns bigint
language sql volatile
as $$
  with doomed as (
    select e.id from gk_public.audit_events e where e.at < cutoff order by e.at limit max_rows),
  gone as (delete from gk_public.audit_events e using doomed d where e.id = d.id returning 1)
  select count(*) from gone;
$$;
