-- Bin kind `certificate`: certificates waiting to be revoked at the CA (status 'revoking'), and
-- issuances held back as unresolved (a retry could sign twice at a CA that cannot be asked what
-- it issued: sql/302_certificate_claims.sql) until an operator answers. The bin reconciler also
-- re-enqueues issuances whose job was lost ('issuing' past its lease): all are the certificates
-- area's pending work, and the tasks record their outcome in 302.

create or replace view gk_private.bin__certificate as
  select c.id::text as ref, c.owner_team_id as team_id, coalesce(c.revoke_requested_at, c.issue_attempted_at) as enqueued_at,
         c.attempts, c.last_error, c.next_attempt_at
    from gk_public.certificates c
   where c.status = 'revoking' or (c.status = 'issuing' and c.unresolved);

-- Overdue revocations and issuances get fresh jobs (in batches), unless their queue is still
-- draining. Rows a live task holds are skipped (its claim, sql/302_certificate_claims.sql).
create or replace function gk_private.bin_redispatch__certificate(max_items int) returns jsonb
language plpgsql volatile
as $$
declare
  v_revoke uuid[];
  v_issue uuid[];
  v_revoke_busy boolean := gk_private.task_backlog('certificates__revoke');
  v_issue_busy boolean := gk_private.task_backlog('certificates__issue');
begin
  with due as (
    select c.id, c.status from gk_public.certificates c
     where ((c.status = 'revoking' and not v_revoke_busy) or (c.status = 'issuing' and not v_issue_busy))
       and c.next_attempt_at <= now()
       and (c.claim_expires_at is null or c.claim_expires_at <= now())
     order by c.next_attempt_at
     limit max_items
       for update skip locked),
  bumped as (
    update gk_public.certificates c set next_attempt_at = now() + gk_private.bin_lease()
      from due where c.id = due.id
    returning c.id, c.status)
  select array_agg(id) filter (where status = 'revoking'), array_agg(id) filter (where status = 'issuing')
    into v_revoke, v_issue from bumped;
  perform gk_private.enqueue_id_batches('certificates__revoke', coalesce(v_revoke, '{}'));
  perform gk_private.enqueue_id_batches('certificates__issue', coalesce(v_issue, '{}'), 50);
  return jsonb_build_object(
    'redispatched', coalesce(cardinality(v_revoke), 0) + coalesce(cardinality(v_issue), 0),
    'busy', v_revoke_busy or v_issue_busy,
    'revocations', coalesce(cardinality(v_revoke), 0),
    'issuances', coalesce(cardinality(v_issue), 0));
end;
$$;

-- The operator's retry: the certificates triggers (300) enqueue the revocation.
create or replace function gk_private.bin_retry__certificate(ref text) returns boolean
language plpgsql volatile
as $$
declare
  v_id uuid;
begin
  begin
    v_id := ref::uuid;
  exception when invalid_text_representation then
    raise exception 'bin item ref % is not a certificate id', ref using errcode = '22023';
  end;
  -- An unresolved one is asked about again (e.g. once its CA can answer lookups); an unresolved
  -- issuance is retried (the certificates triggers enqueue it), which asks the CA first.
  update gk_public.certificates c set retry_requested_at = clock_timestamp(), unresolved = false, next_attempt_at = now()
   where c.id = v_id and (c.status = 'revoking' or (c.status = 'issuing' and c.unresolved));
  return found;
end;
$$;

select gk_private.bin_kind_register('certificate', 'certificates', 'Certificates waiting to be revoked at the CA.');
