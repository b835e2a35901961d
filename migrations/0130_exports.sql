-- Up Migration
-- Exports: every read-only resource (a team's published image; the resource type is an enum so
-- more kinds can join) is served by exactly one in-service export node. An export node is a role
-- of the agent program (`groundskeeper agent --roles exports`, src/exports/agent-role.ts); its
-- identity is the build worker whose certificate the agent presents (docs/agent.md). The
-- coordinator (tasks/exports__coordinate.ts) computes what is missing or stale and runs the
-- create/delete sagas (src/exports/sagas/). Stored logic: sql/700_exports.sql, sql/710_exports_bin.sql.

create type gk_public.export_resource_type as enum ('image');

create table gk_public.export_nodes (
  id uuid primary key default gen_random_uuid(),
  -- The agent's identity: its certificate has profile worker and CN = workers.id. SET NULL when
  -- the worker is pruned, which expunges the node (trigger _100_expunge_when_worker_gone): the
  -- node row stays, because export records keep pointing at where they were served.
  worker_id uuid unique references gk_public.workers (id) on delete set null,
  -- Where Groundskeeper reaches the agent (https://host:port); set when it registers.
  address text not null check (address ~ '^https://[A-Za-z0-9.:\[\]-]{1,255}:[0-9]{1,5}$'),
  -- in_service: new exports may land here; expunged (by an operator, or its worker was pruned):
  -- permanent, its exports are re-created elsewhere.
  state text not null default 'in_service' check (state in ('in_service', 'expunged')),
  heartbeat_ttl interval not null default interval '60 seconds'
    check (heartbeat_ttl between interval '2 seconds' and interval '1 hour'),
  last_heartbeat_at timestamptz not null default now(),
  -- last_heartbeat_at + heartbeat_ttl: past it, no new export is placed on the node.
  expires_at timestamptz not null default now() + interval '60 seconds',
  agent_version text check (length(agent_version) <= 100),
  -- What the agent said in its last heartbeat.
  attachments int check (attachments >= 0),
  registered_at timestamptz not null default now(),
  expunged_at timestamptz,
  constraint export_nodes_expunged_at check ((state = 'expunged') = (expunged_at is not null)),
  constraint export_nodes_in_service_has_worker check (state <> 'in_service' or worker_id is not null)
);
-- Behind "pick an in-service node" (the create saga).
create index export_nodes_in_service_idx on gk_public.export_nodes (expires_at) where state = 'in_service';
comment on table gk_public.export_nodes is 'Export nodes: agents that serve read-only resources (images) over their authenticated HTTPS server.';

create table gk_public.exports (
  id uuid primary key default gen_random_uuid(),
  resource_type gk_public.export_resource_type not null,
  -- No foreign key: the resource type decides the table, and a record outlives its resource (the
  -- coordinator notices the resource is gone and deletes the export).
  resource_id uuid not null,
  -- requested → assigning (create saga) → live → deleting (delete saga) → deleted; requested →
  -- deleted directly when the resource went before anything was attached.
  state text not null default 'requested' check (state in ('requested', 'assigning', 'live', 'deleting', 'deleted')),
  -- Set by the coordinator when the resource was deleted or the node expunged: the record must go.
  delete_requested_at timestamptz,
  -- RESTRICT: nodes are expunged, never deleted, while records (history included) name them.
  node_id uuid references gk_public.export_nodes (id) on delete restrict,
  -- The node's handle of the attachment (= the create saga's id) and where it is served.
  attachment_id uuid,
  url text check (length(url) <= 2048),
  -- The lock: the saga operating on the row (assigning, deleting). No foreign key: a lock is
  -- checked by value, and saga history is pruned on its own schedule.
  operating_saga_id uuid,
  -- The last saga started for the record (the coordinator does not start another while it runs).
  saga_id uuid references gk_public.sagas (id) on delete set null,
  -- Bumped by every saga that takes the row: a saga started for generation g only takes a row
  -- whose generation is below g, so a duplicate start unwinds at its first step.
  generation bigint not null default 0 check (generation >= 0),
  -- Sagas that took the row since it was last live or deleted.
  attempts int not null default 0 check (attempts >= 0),
  created_at timestamptz not null default now(),
  state_changed_at timestamptz not null default now(),
  live_at timestamptz,
  -- When the coordinator last saw the node report the attachment (a node that lost it answers 404).
  verified_at timestamptz,
  deleted_at timestamptz,
  constraint exports_locked check ((state in ('assigning', 'deleting')) = (operating_saga_id is not null)),
  constraint exports_live_attached check (state not in ('live', 'deleting') or (node_id is not null and attachment_id is not null and url is not null)),
  constraint exports_deleted_at check ((state = 'deleted') = (deleted_at is not null)),
  constraint exports_requested_unattached check (state <> 'requested' or (node_id is null and attachment_id is null and url is null))
);
-- At most one non-deleted record per resource; deleted records are kept as history.
create unique index exports_one_per_resource on gk_public.exports (resource_type, resource_id) where state <> 'deleted';
-- The changeset: requested records to create, marked records to delete.
create index exports_requested_idx on gk_public.exports (created_at) where state = 'requested' and delete_requested_at is null;
create index exports_delete_due_idx on gk_public.exports (state_changed_at) where delete_requested_at is not null and state <> 'deleted';
-- Behind the expunge sweep and per-node counts.
create index exports_node_idx on gk_public.exports (node_id) where state <> 'deleted';
-- Behind the bin view: records not yet settled (in progress, waiting, or live but doomed).
create index exports_unsettled_idx on gk_public.exports (state_changed_at)
  where state <> 'deleted' and (state <> 'live' or delete_requested_at is not null);
-- The coordinator checks live attachments, least recently verified first.
create index exports_verify_idx on gk_public.exports (verified_at nulls first) where state = 'live' and delete_requested_at is null;
create index exports_saga_id_idx on gk_public.exports (saga_id);
comment on table gk_public.exports is 'Export records: which node serves which read-only resource, and the state of getting it there.';

-- Down Migration
drop trigger if exists _100_expunge_when_worker_gone on gk_public.export_nodes;
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('gk_public', 'gk_private')
              and (p.proname ~ '^exports?_' or p.proname ~ '^export_node' or p.proname in ('expunge_export_node', 'request_export',
                   'bin__export', 'bin_redispatch__export', 'bin_retry__export', 'tg_export_nodes__expunge_when_worker_gone'))
  loop
    execute format('drop function %s cascade', f);
  end loop;
end $$;
delete from gk_public.bin_kinds where kind = 'export';
drop view if exists gk_private.bin__export cascade;
drop table gk_public.exports cascade;
drop table gk_public.export_nodes cascade;
drop type gk_public.export_resource_type;
