-- Up Migration
-- The target rules (0110) and fragments (0113) ran several non-inlined, SECURITY DEFINER
-- functions for every row written, several times slower than the rest of a bulk insert. Now:
-- - the constraints check cheap expressions (tuf_path_ok, tuf_hashes_ok: plain SQL on
--   pg_catalog only, inlined); the *_problem functions only say what is wrong (the row trigger
--   _100_check_target of sql/400_tuf.sql calls them when an *_ok check fails);
-- - tuf_hashes_problem calls nothing (no SECURITY DEFINER);
-- - the fragment is the column's own expression, which names functions by oid (writers need no
--   usage on gk_private), and the usual hashes ({"sha256": …} alone) and no custom take no
--   function call at all;
-- - the per-segment bound of 255 bytes is dropped (not a rule clients need).

create function gk_private.tuf_path_ok(path text) returns boolean
language sql immutable strict parallel safe
as $$ select octet_length(path) between 1 and 1024 and path !~ '[\\?#%[:cntrl:]]|^/|/$|//|(^|/)\.\.?(/|$)|^[A-Za-z]:' $$;

create or replace function gk_private.tuf_path_problem(path text) returns text
language sql immutable strict parallel safe
as $$
  select case
    when path = '' then 'is empty'
    when octet_length(path) > 1024 then 'is longer than 1024 bytes'
    when path ~ '[[:cntrl:]]' then 'contains a control character'
    when path ~ '[\\]' then 'contains a backslash'
    when path ~ '[?#%]' then 'contains ?, # or % (they change the download URL)'
    when path ~ '^/' then 'starts with /'
    when path ~ '/$' then 'ends with /'
    when path ~ '//' then 'has an empty segment (//)'
    when path ~ '(^|/)\.\.?(/|$)' then 'has a "." or ".." segment'
    when path ~ '^[A-Za-z]:' then 'starts with a drive letter'
  end
$$;

create function gk_private.tuf_hashes_ok(hashes jsonb) returns boolean
language sql immutable strict parallel safe
as $$
  select case when jsonb_typeof(hashes) <> 'object' or hashes = '{}'::jsonb then false
    else hashes - 'sha256' - 'sha384' - 'sha512' = '{}'::jsonb
     and (not hashes ? 'sha256' or (jsonb_typeof(hashes -> 'sha256') = 'string' and length(hashes ->> 'sha256') = 64 and (hashes ->> 'sha256') !~ '[^0-9a-f]'))
     and (not hashes ? 'sha384' or (jsonb_typeof(hashes -> 'sha384') = 'string' and length(hashes ->> 'sha384') = 96 and (hashes ->> 'sha384') !~ '[^0-9a-f]'))
     and (not hashes ? 'sha512' or (jsonb_typeof(hashes -> 'sha512') = 'string' and length(hashes ->> 'sha512') = 128 and (hashes ->> 'sha512') !~ '[^0-9a-f]'))
  end
$$;

create or replace function gk_private.tuf_hashes_problem(hashes jsonb) returns text
language sql immutable strict parallel safe security invoker
as $$
  select case
    when jsonb_typeof(hashes) <> 'object' or hashes = '{}'::jsonb then 'must be an object {algorithm: hex digest} with at least one entry'
    else (
      select case
        when h.key not in ('sha256', 'sha384', 'sha512') then format('%s is not a known algorithm (known: sha256, sha384, sha512)', h.key)
        when jsonb_typeof(h.value) <> 'string' or (h.value #>> '{}') !~ '^[0-9a-f]*$' then format('%s must be lower-case hex', h.key)
        else format('%s must be %s hex digits, got %s', h.key,
                    case h.key when 'sha256' then 64 when 'sha384' then 96 else 128 end, length(h.value #>> '{}'))
      end
        from jsonb_each(hashes) h
       where h.key not in ('sha256', 'sha384', 'sha512')
          or jsonb_typeof(h.value) <> 'string'
          or length(h.value #>> '{}') <> case h.key when 'sha256' then 64 when 'sha384' then 96 else 128 end
          or (h.value #>> '{}') !~ '^[0-9a-f]*$'
       order by h.key
       limit 1)
  end
$$;
drop function gk_private.tuf_hash_length(text);

alter table gk_public.tuf_targets
  drop constraint tuf_targets_path_rules,
  drop constraint tuf_targets_hashes_rules,
  add constraint tuf_targets_path_rules check (gk_private.tuf_path_ok(path)),
  add constraint tuf_targets_hashes_rules check (gk_private.tuf_hashes_ok(hashes));

alter table gk_public.tuf_targets drop column fragment;
drop function gk_private.tuf_target_fragment(text, bigint, jsonb, jsonb);
alter table gk_public.tuf_targets
  add column fragment text not null generated always as (
    '"' || replace(replace(path, '\', '\\'), '"', '\"') || '":{'
    || coalesce('"custom":' || gk_private.tuf_canonical(custom) || ',', '')
    || '"hashes":' || case when hashes - 'sha256' = '{}'::jsonb then '{"sha256":"' || (hashes ->> 'sha256') || '"}'
                           else gk_private.tuf_canonical(hashes) end
    || ',"length":' || length::text || '}') stored;
comment on column gk_public.tuf_targets.fragment is 'This target''s entry in its bin, as canonical JSON (what is signed); computed from path, length, hashes and custom.';

-- Down Migration
-- The previous forms (0110, 0113), so that their Down migrations find what they drop.
alter table gk_public.tuf_targets drop column fragment;
create function gk_private.tuf_target_fragment(path text, length bigint, hashes jsonb, custom jsonb) returns text
language sql immutable parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
  select gk_private.tuf_canonical_string(path) || ':{'
      || case when custom is null then '' else '"custom":' || gk_private.tuf_canonical(custom) || ',' end
      || '"hashes":{' || (select string_agg(gk_private.tuf_canonical_string(h.key) || ':' || gk_private.tuf_canonical_string(h.value), ','
                                            order by h.key collate "C")
                            from jsonb_each_text(hashes) h) || '}'
      || ',"length":' || length || '}'
$$;
alter table gk_public.tuf_targets
  add column fragment text not null generated always as (gk_private.tuf_target_fragment(path, length, hashes, custom)) stored;
create function gk_private.tuf_hash_length(algorithm text) returns int
language sql immutable strict parallel safe
as $$ select case algorithm when 'sha256' then 64 when 'sha384' then 96 when 'sha512' then 128 end $$;
alter table gk_public.tuf_targets
  drop constraint tuf_targets_path_rules,
  drop constraint tuf_targets_hashes_rules,
  add constraint tuf_targets_path_rules check (gk_private.tuf_path_problem(path) is null),
  add constraint tuf_targets_hashes_rules check (gk_private.tuf_hashes_problem(hashes) is null);
drop function gk_private.tuf_hashes_ok(jsonb);
drop function gk_private.tuf_path_ok(text);
