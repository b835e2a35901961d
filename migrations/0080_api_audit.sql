-- Up Migration
-- The audit log of the admin API: one row per GraphQL mutation (and per one-time key download),
-- written by the server after the operation (src/server/audit.ts) through
-- gk_private.audit_record (sql/120_api_audit.sql). Admins read it through GraphQL
-- (allAuditEvents); viewers cannot. Pruned by the retention sweep (kind audit_events).
create table gk_public.audit_events (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  -- Which token (never its secret). The name is kept as it was: tokens can be renamed or go.
  token_id uuid references gk_private.api_tokens (id) on delete set null,
  token_name text not null check (length(token_name) between 1 and 200),
  role text not null check (role in ('gk_admin', 'gk_viewer')),
  -- 'mutation' for GraphQL, or the HTTP operation (e.g. 'GET /certificates/{id}/key.pem').
  operation text not null check (length(operation) between 1 and 200),
  operation_name text check (length(operation_name) <= 200),
  -- The mutation fields (deleteTeamByName, …) and their arguments, bounded by the server.
  fields text[] not null default '{}' check (cardinality(fields) <= 64),
  arguments jsonb not null default '{}' check (octet_length(arguments::text) <= 16384),
  outcome text not null check (outcome in ('succeeded', 'failed')),
  error text check (length(error) <= 2000),
  duration_ms int not null check (duration_ms >= 0)
);
create index audit_events_at_idx on gk_public.audit_events (at);
create index audit_events_token_idx on gk_public.audit_events (token_id, at);
comment on table gk_public.audit_events is E'@behavior -insert -update -delete\nEvery mutation made through the admin API: which token, which fields with which arguments, when, and the outcome. Plain-SQL changes by the platform''s own servers are not here.';

insert into gk_public.retention_policies (kind, retention, description)
values ('audit_events', interval '400 days', 'Admin API audit log (gk_public.audit_events), counted from the event.')
on conflict (kind) do nothing;

-- Down Migration
delete from gk_public.retention_policies where kind = 'audit_events';
drop function if exists gk_private.retention_prune__audit_events(timestamptz);
drop function if exists gk_private.retention_prune__audit_events(timestamptz, int);
drop function if exists gk_private.audit_record(uuid, text, text, text, text, text[], jsonb, text, text, int);
drop table gk_public.audit_events;
