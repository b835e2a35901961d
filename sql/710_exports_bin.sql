-- Bin kind `export`: export records not yet settled — requested or being created, live but
-- marked for deletion, being deleted — with the error of their last saga. The coordinator
-- (exports__coordinate) drains them; redispatch runs it when some wait without a running saga,
-- and drives again the sagas of rows whose saga's job was lost. A queued record (its saga started,
-- not yet taken, or written already taken by settling and not yet live: saga_queued_until) is
-- due when its saga should have moved; one whose saga finished or is gone, when the coordinator
-- gives it back (sql/700, exports_queued_overdue).

create or replace view gk_private.bin__export as
  select e.id::text as ref, i.team_id, e.state_changed_at as enqueued_at, e.attempts,
         coalesce(s.undo_error, case when s.state = 'failed' then s.error end) as last_error,
         case when e.saga_queued_until is not null and (s.id is null or s.finished_at is not null) then e.saga_queued_until
              when e.operating_saga_id is not null or e.saga_queued_until is not null
              then coalesce(s.updated_at, e.state_changed_at) + gk_private.bin_lease()
              else e.state_changed_at end
           as next_attempt_at
    from gk_public.exports e
    left join gk_public.images i on e.resource_type = 'image' and i.id = e.resource_id
    left join gk_public.sagas s on s.id = e.saga_id
   where e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null);

create or replace function gk_private.bin_redispatch__export(max_items int) returns jsonb
language plpgsql volatile
as $$
declare
  v_busy boolean := gk_private.task_backlog('exports__coordinate');
  v_waiting int;
  v_sagas int;
begin
  -- Waiting for the coordinator: no saga runs for them.
  select count(*)::int into v_waiting from (
    select 1 from gk_public.exports e
     where e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null)
       and e.operating_saga_id is null
       and not exists (select 1 from gk_public.sagas s where s.id = e.saga_id and s.finished_at is null)
     limit max_items) w;
  if v_waiting > 0 and not v_busy then
    perform gk_private.reconciler_activate('exports__coordinate');
  end if;
  -- Held by a saga that has stopped moving (its job gave up or was lost): drive it again (a
  -- second runner of a live one finds its advisory lock taken and retries later). A record
  -- settling wrote already taken keeps its lease until live: the coordinator's overdue check
  -- (exports_queued_overdue) looks after it, and does not pile jobs onto a queue that is only behind.
  with stuck as (
    select s.id, s.name from gk_public.exports e join gk_public.sagas s on s.id = e.operating_saga_id
     where e.state in ('assigning', 'deleting') and e.saga_queued_until is null
       and s.finished_at is null and s.updated_at < now() - gk_private.bin_lease()
     order by s.updated_at limit max_items)
  select count(gk_private.saga_enqueue(stuck.id, stuck.name))::int into v_sagas from stuck;
  return jsonb_build_object('redispatched', case when v_busy then 0 else v_waiting end + v_sagas, 'busy', v_busy);
end;
$$;

create or replace function gk_private.bin_retry__export(ref text) returns boolean
language plpgsql volatile
as $$
declare
  v_id uuid;
  v gk_public.exports;
begin
  begin
    v_id := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not an export id', ref using errcode = '22023';
  end;
  select * into v from gk_public.exports e
   where e.id = v_id and e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null);
  if not found then
    return false;
  end if;
  if v.operating_saga_id is not null then
    update gk_public.sagas s set retry_requested_at = clock_timestamp() where s.id = v.operating_saga_id and s.finished_at is null;
  else
    perform gk_private.reconciler_activate('exports__coordinate');
  end if;
  return true;
end;
$$;

select gk_private.bin_kind_register('export', 'exports', 'Exports being created or deleted on an export node, or waiting for the coordinator.');
