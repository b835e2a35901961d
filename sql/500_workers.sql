-- Build workers: enrolment (a certificate owned by the worker, through the certificate
-- lifecycle), registration and heartbeats from the agent (through the peer gateway,
-- src/peers/gateway.ts), the lifecycle sweep (stall / land / retire / prune, after Concourse's
-- atc/db/worker_lifecycle.go) and the operator's functions.

-- Serving states: the agent heartbeats and its volumes are collected.
create or replace function gk_private.workers_serving_states() returns text[]
language sql immutable
as $$
  select array['running', 'landing', 'retiring'];
$$;

-- ---------------------------------------------------------------------------------------------
-- Enrolment. The agent keeps its own key (the CLI generates it where the agent runs); the
-- certificate is issued by certificates__issue like any other and downloaded with
-- download_certificate. Re-enrolling a worker rotates its certificate: the previous ones are
-- revoked as superseded (trigger below).

create or replace function gk_public.enroll_worker(name text, public_key_pem text, valid_for interval default interval '365 days')
returns gk_public.certificates
language plpgsql volatile
as $$
declare
  v_worker uuid;
  v_cert gk_public.certificates;
begin
  if enroll_worker.name is null or enroll_worker.name !~ '^[a-z0-9][a-z0-9._-]{0,62}$' then
    raise exception 'worker name must be 1–63 characters of a-z, 0-9, ".", "_", "-" (got %)', coalesce(enroll_worker.name, 'null')
      using errcode = '22023';
  end if;
  if public_key_pem is null then
    raise exception 'public_key_pem is required: the agent keeps its own private key' using errcode = '22023';
  end if;
  perform gk_public.check_certificate_request(public_key_pem, valid_for);
  select w.id into v_worker from gk_public.workers w where w.name = enroll_worker.name;
  if v_worker is null then
    insert into gk_public.workers (name) values (enroll_worker.name)
    on conflict on constraint workers_name_key do nothing
    returning id into v_worker;
    if v_worker is null then
      select w.id into v_worker from gk_public.workers w where w.name = enroll_worker.name;
    end if;
  end if;
  insert into gk_public.certificates (worker_id, profile, public_key_pem, not_after)
  values (v_worker, 'worker', enroll_worker.public_key_pem, date_trunc('second', now() + valid_for))
  returning * into v_cert;
  return v_cert;
end;
$$;
comment on function gk_public.enroll_worker is 'Enrols a build worker (creating it, landed) and requests its agent''s certificate for the given public key; download it with downloadCertificate. Re-enrolling revokes the worker''s previous certificates.';

-- A new worker certificate supersedes the worker's older live ones (SECURITY DEFINER: the
-- admin role may request certificates but not revoke them by UPDATE).
create or replace function gk_private.tg_certificates__supersede_worker_certificates() returns trigger
language plpgsql volatile security definer
set search_path to pg_catalog, public, pg_temp
as $$
begin
  if not exists (select 1 from new_rows n where n.worker_id is not null) then
    return null;
  end if;
  update gk_public.certificates c
     set status = 'revoking', revocation_reason = 'superseded'
   where c.worker_id in (select n.worker_id from new_rows n where n.worker_id is not null)
     and c.status in ('issuing', 'issued')
     and c.id not in (select n.id from new_rows n);
  return null;
end;
$$;

drop trigger if exists _520_supersede_worker_certificates on gk_public.certificates;
create trigger _520_supersede_worker_certificates
  after insert on gk_public.certificates
  referencing new table as new_rows
  for each statement execute function gk_private.tg_certificates__supersede_worker_certificates();

-- ---------------------------------------------------------------------------------------------
-- Peers (agents, and Groundskeeper itself towards them) are known by the serial of the
-- certificate they present; only a certificate that is issued and unexpired is accepted.
create or replace function gk_private.certificate_peer(serial text)
returns table (certificate_id uuid, profile text, status text, worker_id uuid, controller_id uuid, live boolean)
language sql stable
as $$
  select c.id, c.profile, c.status, c.worker_id, c.controller_id, c.status = 'issued' and c.not_after > now()
    from gk_public.certificates c
   where c.serial = certificate_peer.serial and c.profile in ('worker', 'controller');
$$;

-- The agent registers when it starts: it says where it listens. A landed or stalled worker
-- comes back as running; landing and retiring stay what they are.
create or replace function gk_private.worker_registered(worker_id uuid, address text, agent_version text, heartbeat_ttl interval default null)
returns gk_public.workers
language sql volatile
as $$
  update gk_public.workers w
     set address = worker_registered.address,
         agent_version = left(worker_registered.agent_version, 100),
         heartbeat_ttl = coalesce(worker_registered.heartbeat_ttl, w.heartbeat_ttl),
         last_heartbeat_at = now(),
         expires_at = now() + coalesce(worker_registered.heartbeat_ttl, w.heartbeat_ttl),
         state = case when w.state in ('landed', 'stalled') then 'running' else w.state end,
         state_changed_at = case when w.state in ('landed', 'stalled') then now() else w.state_changed_at end,
         stalled_since = null
   where w.id = worker_registered.worker_id
  returning w.*;
$$;

-- A heartbeat extends the worker's life; a stalled worker whose agent answers again is running.
-- A landed worker stays landed (it registers again when its agent restarts). Returns the state
-- (null: no such worker).
create or replace function gk_private.worker_heartbeat(worker_id uuid, live_volumes int, dead_volumes int)
returns text
language sql volatile
as $$
  update gk_public.workers w
     set last_heartbeat_at = case when w.state = 'landed' then w.last_heartbeat_at else now() end,
         expires_at = case when w.state = 'landed' then w.expires_at else now() + w.heartbeat_ttl end,
         live_volumes = worker_heartbeat.live_volumes,
         dead_volumes = worker_heartbeat.dead_volumes,
         state = case when w.state = 'stalled' then 'running' else w.state end,
         state_changed_at = case when w.state = 'stalled' then now() else w.state_changed_at end,
         stalled_since = case when w.state = 'stalled' then null else w.stalled_since end
   where w.id = worker_heartbeat.worker_id
  returning w.state;
$$;

-- ---------------------------------------------------------------------------------------------
-- The lifecycle sweep (volumes__workers): one statement per transition, each index-backed.
-- A worker is busy while a running build has a container on it.

create or replace function gk_private.workers_busy(worker_id uuid) returns boolean
language sql stable
as $$
  select exists (select 1 from gk_public.containers c join gk_public.builds b on b.id = c.build_id
                  where c.worker_id = workers_busy.worker_id and b.status = 'running');
$$;

-- After how long a stalled worker is pruned (its rows cascade); unset = never, as Concourse.
create or replace function gk_private.workers_stalled_timeout() returns interval
language sql stable
as $$
  select nullif(current_setting('groundskeeper.stalled_worker_timeout', true), '')::interval;
$$;

create or replace function gk_private.workers_reconcile() returns jsonb
language plpgsql volatile
as $$
declare
  v_stalled int;
  v_landed int;
  v_retired int;
  v_pruned int := 0;
  v_timeout interval := gk_private.workers_stalled_timeout();
begin
  with s as (
    update gk_public.workers w set state = 'stalled', stalled_since = now(), state_changed_at = now()
     where w.state = 'running' and w.expires_at < now()
    returning 1)
  select count(*) into v_stalled from s;
  with l as (
    update gk_public.workers w set state = 'landed', address = null, expires_at = null, state_changed_at = now()
     where w.state = 'landing' and not gk_private.workers_busy(w.id)
    returning 1)
  select count(*) into v_landed from l;
  -- Deleting cascades to its containers and volumes and revokes its certificate (SET NULL).
  with r as (
    delete from gk_public.workers w where w.state = 'retiring' and not gk_private.workers_busy(w.id)
    returning 1)
  select count(*) into v_retired from r;
  if v_timeout is not null then
    with p as (
      delete from gk_public.workers w where w.state = 'stalled' and w.stalled_since < now() - v_timeout
      returning 1)
    select count(*) into v_pruned from p;
  end if;
  return jsonb_build_object('stalled', v_stalled, 'landed', v_landed, 'retired', v_retired, 'pruned', v_pruned);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Operator functions (GraphQL). SECURITY INVOKER: the admin role's table privileges decide.

create or replace function gk_private.worker_by_name(name text) returns gk_public.workers
language plpgsql volatile
as $$
declare
  v gk_public.workers;
begin
  select * into v from gk_public.workers w where w.name = worker_by_name.name for update;
  if not found then
    raise exception 'worker % not found', worker_by_name.name using errcode = 'P0002';
  end if;
  return v;
end;
$$;

create or replace function gk_public.land_worker(name text) returns gk_public.workers
language plpgsql volatile
as $$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state in ('landing', 'landed') then
    return v;
  end if;
  if v.state <> 'running' then
    raise exception 'worker % is %: only a running worker can land', v.name, v.state using errcode = '55000';
  end if;
  update gk_public.workers w set state = 'landing', state_changed_at = now() where w.id = v.id returning * into v;
  return v;
end;
$$;
comment on function gk_public.land_worker is 'Lands a running worker: no new volumes; it becomes landed once no running build uses it.';

create or replace function gk_public.retire_worker(name text) returns gk_public.workers
language plpgsql volatile
as $$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state = 'retiring' then
    return v;
  end if;
  if v.state not in ('running', 'landing') then
    raise exception 'worker % is %: prune it instead', v.name, v.state using errcode = '55000';
  end if;
  update gk_public.workers w set state = 'retiring', state_changed_at = now() where w.id = v.id returning * into v;
  return v;
end;
$$;
comment on function gk_public.retire_worker is 'Retires a worker: once no running build uses it, it is deleted (its volumes and containers go, its certificate is revoked).';

create or replace function gk_public.prune_worker(name text) returns boolean
language plpgsql volatile
as $$
declare
  v gk_public.workers := gk_private.worker_by_name(name);
begin
  if v.state = 'running' then
    raise exception 'worker % is running: land or retire it (or stop its agent and let it stall) first', v.name
      using errcode = '55000';
  end if;
  delete from gk_public.workers w where w.id = v.id;
  return true;
end;
$$;
comment on function gk_public.prune_worker is 'Deletes a worker that is not running: its rows cascade and its certificate is revoked. If its agent comes back it must be enrolled again.';

comment on table gk_public.workers is E'@behavior -insert -update -delete\nBuild workers: each runs a Groundskeeper agent that owns the volumes on its disk. Deleting (pruning) one cascades to its containers and volumes and revokes its certificate.';
comment on table gk_public.controllers is E'@behavior -insert -update -delete\nGroundskeeper''s own identity for mutual TLS with agents. Deleting it revokes its certificates (a new one is made on demand).';
grant select on gk_public.workers, gk_public.controllers to gk_viewer, gk_admin;
grant insert (name) on gk_public.workers to gk_admin;
grant update (state, state_changed_at) on gk_public.workers to gk_admin;
grant delete on gk_public.workers to gk_admin;
grant insert (worker_id) on gk_public.certificates to gk_admin;
revoke all on gk_private.controller_keys from public, gk_admin, gk_viewer;
