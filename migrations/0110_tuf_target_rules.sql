-- Up Migration
-- What a target may be, so that every client signs and reads the same bytes and can fetch and
-- store the file safely. Each rule is a function returning the problem (null when fine): the
-- CHECK constraints below hold the invariant, and the row trigger _100_check_target
-- (sql/400_tuf.sql) raises the same problem as a clear 22023 error. Rules that span rows (two
-- paths of one bin) are checked by the statement trigger of sql/400_tuf.sql. The rules that call
-- other rules are SECURITY DEFINER: a SQL function's body is resolved as its caller, and writers
-- (gk_admin) have no usage on gk_private.

-- Canonical JSON sorts object keys: tuf-js by UTF-16 code units, securesystemslib (python-tuf) by
-- code points, go-tuf by UTF-8 bytes (the same order as code points). The orders differ only
-- between a character in U+E000..U+FFFF and one above U+FFFF at the same position, so only key
-- sets holding both are sorted twice. Returns two keys that swap places, or null.
create function gk_private.tuf_utf16_key(s text) returns bytea
language sql immutable strict parallel safe
as $$
  select coalesce(decode(string_agg(
           case when cp < 65536 then lpad(to_hex(cp), 4, '0')
                else to_hex(55296 + ((cp - 65536) >> 10)) || to_hex(56320 + ((cp - 65536) & 1023)) end,
           '' order by n), 'hex'), '\x'::bytea)
    from (select ascii(c) as cp, n from string_to_table(s, null) with ordinality as t (c, n)) x
$$;

create function gk_private.tuf_key_order_conflict(keys text[]) returns text[]
language sql immutable strict parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
  select case
    when exists (select 1 from unnest(keys) k where k ~ '[\uE000-\uFFFF]')
     and exists (select 1 from unnest(keys) k where k ~ '[\U00010000-\U0010FFFF]')
    then (select array[a.k, b.k]
            from (select k, row_number() over (order by k collate "C") as i from unnest(keys) k) a
            join (select k, row_number() over (order by gk_private.tuf_utf16_key(k)) as i from unnest(keys) k) b on a.i = b.i
           where a.k <> b.k
           order by a.i
           limit 1)
  end
$$;

-- A path a client can fetch by URL and write under its target directory: relative, no empty,
-- "." or ".." segment, no backslash or drive letter (Windows clients), no "?", "#" or "%"
-- (they change the URL), no control characters; at most 1,024 bytes, 255 per segment.
create function gk_private.tuf_path_problem(path text) returns text
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
    when exists (select 1 from string_to_table(path, '/') s where octet_length(s) > 255) then 'has a segment longer than 255 bytes'
  end
$$;

-- {algorithm: lower-case hex digest} with the digest length of each known algorithm.
create function gk_private.tuf_hash_length(algorithm text) returns int
language sql immutable strict parallel safe
as $$ select case algorithm when 'sha256' then 64 when 'sha384' then 96 when 'sha512' then 128 end $$;

create function gk_private.tuf_hashes_problem(hashes jsonb) returns text
language sql immutable strict parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
  select case
    when jsonb_typeof(hashes) <> 'object' or hashes = '{}'::jsonb then 'must be an object {algorithm: hex digest} with at least one entry'
    else (
      select case
        when gk_private.tuf_hash_length(h.key) is null then format('%s is not a known algorithm (known: sha256, sha384, sha512)', h.key)
        when jsonb_typeof(h.value) <> 'string' or (h.value #>> '{}') !~ '^[0-9a-f]*$' then format('%s must be lower-case hex', h.key)
        else format('%s must be %s hex digits, got %s', h.key, gk_private.tuf_hash_length(h.key), length(h.value #>> '{}'))
      end
        from jsonb_each(hashes) h
       where gk_private.tuf_hash_length(h.key) is null
          or jsonb_typeof(h.value) <> 'string'
          or (h.value #>> '{}') !~ '^[0-9a-f]*$'
          or length(h.value #>> '{}') <> gk_private.tuf_hash_length(h.key)
       order by h.key
       limit 1)
  end
$$;

-- custom: an object of at most 16 KiB and 16 levels (a publish walks it recursively), whose
-- numbers are integers JSON carries exactly (|n| <= 2^53 - 1, no fraction or exponent:
-- securesystemslib refuses floats and JavaScript rounds larger integers), without control
-- characters (canonical JSON does not escape them, so the document would not be JSON), and
-- whose keys sort the same in every client (above).
create function gk_private.tuf_custom_problem(custom jsonb) returns text
language sql immutable strict parallel safe security definer
set search_path to pg_catalog, pg_temp
as $$
  select case
    when jsonb_typeof(custom) <> 'object' then 'must be a JSON object'
    when octet_length(custom::text) > 16384 then 'is larger than 16 KiB'
    else (
      with recursive walk (v, depth, at) as (
        select custom, 1, '$'::text
        union all
        select c.value, w.depth + 1, w.at || c.step
          from walk w
          cross join lateral (
            select e.value, '.' || e.key as step
              from jsonb_each(case when jsonb_typeof(w.v) = 'object' then w.v end) e
            union all
            select a.value, '[' || (a.n - 1) || ']'
              from jsonb_array_elements(case when jsonb_typeof(w.v) = 'array' then w.v end) with ordinality a (value, n)
          ) c
         where w.depth <= 16
      )
      select format('at %s %s', p.at, p.problem)
        from (
          select w.at, case
            when w.depth > 16 then 'is nested deeper than 16 levels'
            when jsonb_typeof(w.v) = 'number'
             and (w.v::text !~ '^-?(0|[1-9][0-9]*)$' or abs(w.v::text::numeric) > 9007199254740991)
              then format('number %s is not an integer between -(2^53 - 1) and 2^53 - 1 (JSON cannot carry it exactly)', w.v::text)
            when jsonb_typeof(w.v) = 'string' and (w.v #>> '{}') ~ '[[:cntrl:]]' then 'a string contains a control character'
            when jsonb_typeof(w.v) = 'object' and exists (select 1 from jsonb_object_keys(w.v) k where k ~ '[[:cntrl:]]')
              then 'a key contains a control character'
            when jsonb_typeof(w.v) = 'object' and gk_private.tuf_key_order_conflict(array(select jsonb_object_keys(w.v))) is not null
              then format('keys %s sort differently in UTF-16 (tuf-js) and by code point (python-tuf, go-tuf)',
                          array_to_string(gk_private.tuf_key_order_conflict(array(select jsonb_object_keys(w.v))), ' and '))
          end as problem
            from walk w
        ) p
       where p.problem is not null
       order by p.at
       limit 1)
  end
$$;

alter table gk_public.tuf_targets
  drop constraint tuf_targets_path_check,
  drop constraint tuf_targets_hashes_check,
  drop constraint tuf_targets_custom_check,
  add constraint tuf_targets_path_rules check (gk_private.tuf_path_problem(path) is null),
  add constraint tuf_targets_hashes_rules check (gk_private.tuf_hashes_problem(hashes) is null),
  add constraint tuf_targets_custom_rules check (custom is null or gk_private.tuf_custom_problem(custom) is null),
  -- JavaScript numbers (tuf-js, the publisher) are exact up to 2^53 - 1.
  add constraint tuf_targets_length_exact check (length <= 9007199254740991);

-- Down Migration
drop trigger if exists _100_check_target on gk_public.tuf_targets;
drop function if exists gk_private.tg_tuf_targets__check_target();
drop function if exists gk_private.tuf_refuse_bin_order_conflicts(uuid[], bigint[]);
alter table gk_public.tuf_targets
  drop constraint tuf_targets_path_rules,
  drop constraint tuf_targets_hashes_rules,
  drop constraint tuf_targets_custom_rules,
  drop constraint tuf_targets_length_exact,
  add constraint tuf_targets_path_check check (length(path) between 1 and 1024 and path !~ '^/' and path !~ '[[:cntrl:]]'),
  add constraint tuf_targets_hashes_check check (gk_private.tuf_valid_hashes(hashes)),
  add constraint tuf_targets_custom_check check (custom is null or (jsonb_typeof(custom) = 'object'
    and not jsonb_path_exists(custom, 'lax $.** ? (@.type() == "number" && @.floor() != @)')));
drop function gk_private.tuf_custom_problem(jsonb);
drop function gk_private.tuf_hashes_problem(jsonb);
drop function gk_private.tuf_hash_length(text);
drop function gk_private.tuf_path_problem(text);
drop function gk_private.tuf_key_order_conflict(text[]);
drop function gk_private.tuf_utf16_key(text);
