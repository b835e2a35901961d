-- Up Migration
-- Each target keeps its entry of a bin's `targets` object as canonical JSON text, computed when
-- the row is written: `"<path>":{"custom":…,"hashes":{…},"length":N}`. A bin re-sign then
-- concatenates its rows' fragments in path order (src/tuf/publish.ts) instead of reading,
-- parsing and re-canonicalising every entry, so one changed target costs about the same in a
-- 100k-target repository as in a small one. Canonical JSON as securesystemslib and
-- @tufjs/canonical-json write it: keys sorted (by code point, which is byte order in UTF-8 and,
-- given the key-order rules of migration 0110, also UTF-16 order), strings with only `\` and `"`
-- escaped (0110 refuses control characters), integers only (0110), no whitespace.
-- test/tuf/helpers/verify_tuf.py checks every published bin byte for byte against
-- securesystemslib.

create function gk_private.tuf_canonical_string(s text) returns text
language sql immutable strict parallel safe
as $$ select '"' || replace(replace(s, '\', '\\'), '"', '\"') || '"' $$;

-- plpgsql: a SQL function cannot name itself in its body when it is created.
create function gk_private.tuf_canonical(v jsonb) returns text
language plpgsql immutable strict parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
begin
  return case jsonb_typeof(v)
    when 'object' then '{' || coalesce((
        select string_agg(gk_private.tuf_canonical_string(e.key) || ':' || gk_private.tuf_canonical(e.value), ',' order by e.key collate "C")
          from jsonb_each(v) e), '') || '}'
    when 'array' then '[' || coalesce((
        select string_agg(gk_private.tuf_canonical(a.value), ',' order by a.n)
          from jsonb_array_elements(v) with ordinality a (value, n)), '') || ']'
    when 'string' then gk_private.tuf_canonical_string(v #>> '{}')
    else v::text
  end;
end;
$$;

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
comment on column gk_public.tuf_targets.fragment is 'This target''s entry in its bin, as canonical JSON (what is signed); computed from path, length, hashes and custom.';

-- Down Migration
alter table gk_public.tuf_targets drop column fragment;
drop function gk_private.tuf_target_fragment(text, bigint, jsonb, jsonb);
drop function gk_private.tuf_canonical(jsonb);
drop function gk_private.tuf_canonical_string(text);
