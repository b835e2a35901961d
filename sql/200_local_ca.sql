-- Local CA: revocation is one set-based statement; it bumps the authority's revocation_seq,
-- which marks the cached CRL stale (the CRL is regenerated debounced, never per revocation).

create or replace function gk_private.local_ca_revoke(authority text, serials text[], reason text)
returns int
language plpgsql volatile
set search_path to pg_catalog, pg_temp
as $$
declare
  unknown text[];
  revoked int;
begin
  if reason is null or reason not in ('unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation') then
    raise exception 'invalid revocation reason %', coalesce(reason, 'null') using errcode = '22023';
  end if;
  -- Bad input changes nothing: refuse the whole batch when any serial is unknown.
  select array_agg(s order by s) into unknown
    from unnest(serials) as s
   where not exists (
     select 1 from gk_private.local_ca_certificates c
      where c.authority = local_ca_revoke.authority and c.serial = s);
  if unknown is not null then
    raise exception 'local CA %: unknown serial(s): %', authority, array_to_string(unknown[1:10], ', ')
      using errcode = 'P0002';
  end if;
  -- Already revoked stays as it was (first revocation time and reason win): idempotent.
  update gk_private.local_ca_certificates c
     set status = 'revoked', revoked_at = now(), reason = local_ca_revoke.reason
   where c.authority = local_ca_revoke.authority
     and c.serial = any (serials)
     and c.status = 'issued';
  get diagnostics revoked = row_count;
  if revoked > 0 then
    update gk_private.local_ca_authorities a
       set revocation_seq = a.revocation_seq + 1
     where a.name = local_ca_revoke.authority;
  end if;
  return revoked;
end;
$$;
comment on function gk_private.local_ca_revoke is 'Revokes serials of a local CA (idempotent); unknown serials → P0002 and nothing changes.';
