-- Bin kind `volume`: volumes being destroyed (state destroying) until their agent confirms, with
-- how long since they were marked, attempts and the agent's last refusal. The collector
-- (volumes__collect) drains them; redispatch activates it when destroys are due and no run is
-- queued (a collector killed mid-run leaves its claims to run out their lease).

create or replace view gk_private.bin__volume as
  select v.handle::text as ref, v.team_id, v.state_changed_at as enqueued_at, v.attempts, v.last_error, v.next_attempt_at
    from gk_public.volumes v
   where v.state = 'destroying';

create or replace function gk_private.bin_redispatch__volume(max_items int) returns jsonb
language plpgsql volatile
as $$
declare
  v_busy boolean := gk_private.task_backlog('volumes__collect');
  v_due int;
begin
  select count(*)::int into v_due from (
    select 1 from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
     where v.state = 'destroying' and v.next_attempt_at <= now()
       and w.state = any (gk_private.workers_serving_states())
     limit max_items) d;
  if v_due > 0 and not v_busy then
    perform gk_private.volumes_activate_collector();
  end if;
  return jsonb_build_object('redispatched', case when v_busy then 0 else v_due end, 'busy', v_busy);
end;
$$;

create or replace function gk_private.bin_retry__volume(ref text) returns boolean
language plpgsql volatile
as $$
declare
  v_handle uuid;
begin
  begin
    v_handle := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not a volume handle', ref using errcode = '22023';
  end;
  update gk_public.volumes v set retry_requested_at = clock_timestamp()
   where v.handle = v_handle and v.state = 'destroying';
  return found;
end;
$$;

select gk_private.bin_kind_register('volume', 'volumes', 'Volumes waiting to be destroyed on their worker''s agent.');
