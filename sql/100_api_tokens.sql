-- Admin API bearer tokens: the database keeps only sha256(token); the plaintext is shown once.

create or replace function gk_private.api_token_create(name text, role text, token_sha256 bytea)
returns uuid
language plpgsql volatile
as $$
declare
  new_id uuid;
begin
  if role not in ('gk_admin', 'gk_viewer') then
    raise exception 'unknown role %, expected admin or viewer', role using errcode = '22023';
  end if;
  insert into gk_private.api_tokens (name, role, token_sha256)
  values (api_token_create.name, api_token_create.role, api_token_create.token_sha256)
  returning id into new_id;
  return new_id;
end;
$$;
comment on function gk_private.api_token_create is 'Registers a token by its sha256; role is gk_admin or gk_viewer.';

-- Who a presented token is (id, name, role), or no row (unknown or revoked). Touches
-- last_used_at at most once a minute so that every API request is not also a write. The admin
-- server uses the id and name for its per-token limits and the audit log. SECURITY DEFINER: the
-- server's connections run as gk_api (sql/920_api_role.sql), which cannot read api_tokens.
create or replace function gk_private.api_token_lookup(token_sha256 bytea)
returns table (id uuid, name text, role text)
language sql volatile
security definer set search_path = pg_catalog, pg_temp
as $$
  with hit as (
    select t.id, t.name, t.role, t.last_used_at
      from gk_private.api_tokens t
     where t.token_sha256 = api_token_lookup.token_sha256 and t.revoked_at is null
  ), touched as (
    update gk_private.api_tokens t
       set last_used_at = now()
      from hit
     where t.id = hit.id and (hit.last_used_at is null or hit.last_used_at < now() - interval '1 minute')
  )
  select hit.id, hit.name, hit.role from hit;
$$;

-- The role a presented token maps to, or null (unknown or revoked).
create or replace function gk_private.api_token_role(token_sha256 bytea)
returns text
language sql volatile
as $$
  select l.role from gk_private.api_token_lookup(api_token_role.token_sha256) l;
$$;

-- Revokes by id or by name; returns how many tokens were revoked.
create or replace function gk_private.api_token_revoke(id_or_name text)
returns bigint
language sql volatile
as $$
  with revoked as (
    update gk_private.api_tokens t
       set revoked_at = now()
     where t.revoked_at is null
       and (t.name = id_or_name or t.id::text = id_or_name)
    returning 1
  )
  select count(*) from revoked;
$$;
