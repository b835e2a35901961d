// Upgrades, per release: the database of each earlier release (test/upgrade/releases/<commit>.sql,
// written by scripts/snapshot-release.ts; no git history or network needed here) is loaded,
// filled through that release's schema (<commit>.fill.sql), migrated with the current code
// (src/db/migrate.ts), and then every row that was there is still there (compared on the columns
// the old schema had) and the pending jobs run; then the upgrade is rolled back on those rows
// and run again.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { migrate, migrateDown } from "../../src/db/migrate.ts";
import { createEmptyDb, type TestDb } from "../helpers/db.ts";
import { runJobs } from "../helpers/jobs.ts";

const here = path.join(path.dirname(fileURLToPath(import.meta.url)), "releases");
const releases = fs
  .readdirSync(here)
  .filter((f) => /^[0-9a-f]{7}\.sql$/.test(f))
  .map((f) => f.slice(0, -4));

/** Tables migrate rewrites by design: the stored-logic checksums and the registry of reconcilers (from tasks/). */
const REWRITTEN = ["gk_private.stored_logic", "gk_public.reconcilers"];

async function exec(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Every table of the platform's schemas (partitions are read through their parent) with its columns. */
async function tables(db: TestDb): Promise<Map<string, string[]>> {
  const { rows } = await db.query<{ t: string; cols: string[] }>(`
    select format('%I.%I', n.nspname, c.relname) as t,
           array_agg(quote_ident(a.attname) order by a.attnum) as cols
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
     where n.nspname in ('gk_public', 'gk_private', 'public') and c.relkind in ('r', 'p') and not c.relispartition
     group by 1 order by 1`);
  return new Map(rows.map((r) => [r.t, r.cols]));
}

/** The rows of a table as text over the given columns (a multiset, sorted). */
async function rowsOf(db: TestDb, table: string, cols: string[]): Promise<string[]> {
  const { rows } = await db.query<{ r: string }>(`select row(${cols.join(", ")})::text as r from ${table}`);
  return rows.map((x) => x.r).sort();
}

/** The rows of the snapshot (over each table's columns of `before`) that the database no longer has. */
async function lostRows(db: TestDb, before: Map<string, string[]>, snapshot: Map<string, string[]>): Promise<Record<string, string[]>> {
  const after = await tables(db);
  const lost: Record<string, string[]> = {};
  for (const [t, cols] of before) {
    if (REWRITTEN.includes(t)) continue;
    if (!after.has(t)) {
      lost[t] = ["(table gone)"];
      continue;
    }
    const missingCols = cols.filter((c) => !after.get(t)!.includes(c));
    if (missingCols.length) {
      lost[t] = [`(columns gone: ${missingCols.join(", ")})`];
      continue;
    }
    const left = await rowsOf(db, t, cols);
    const gone = snapshot.get(t)!.filter((r) => {
      const i = left.indexOf(r);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
    if (gone.length) lost[t] = gone;
  }
  return lost;
}

describe.each(releases)("upgrade from release %s", (release) => {
  it("keeps every row of every table, and the pending work runs", { timeout: 120_000 }, async () => {
    const empty = await createEmptyDb();
    const pool = createPool(empty.url, 4);
    afterAll(async () => {
      await pool.end();
      await empty.drop();
    });
    const db: TestDb = { url: empty.url, name: "", pool, query: (sql, params) => pool.query(sql, params as unknown[]) };
    // pg_dump's psql meta-commands (\restrict) are not SQL; everything else is.
    const dump = fs.readFileSync(path.join(here, `${release}.sql`), "utf8").replace(/^\\.*$/gm, "");
    // A snapshot must load on every server the suite runs on, the embedded one included, which
    // has no lz4 (scripts/snapshot-release.ts dumps with --no-toast-compression).
    expect(dump.match(/^.*SET COMPRESSION.*$/m)?.[0] ?? null).toBeNull();
    await exec(db.url, dump);
    await exec(db.url, fs.readFileSync(path.join(here, `${release}.fill.sql`), "utf8"));

    const before = await tables(db);
    const empties: string[] = [];
    const snapshot = new Map<string, string[]>();
    for (const [t, cols] of before) {
      const rows = await rowsOf(db, t, cols);
      if (!rows.length) empties.push(t);
      snapshot.set(t, rows);
    }
    // A table the fill leaves empty is a table whose upgrade is not tested: fill it.
    expect(empties).toEqual([]);

    const upgrade = await migrate(db.url);

    expect(await lostRows(db, before, snapshot)).toEqual({});
    const { rows: states } = await db.query("select status, count(*)::int as n from gk_public.certificates group by 1 order by 1");
    expect(states.map((r) => r.status)).toEqual(["expired", "failed", "issued", "issuing", "revoked", "revoking"]);
    const { rows: bin } = await db.query("select kind, ref from gk_public.bin order by kind, ref");
    expect(bin.map((r) => r.kind)).toEqual(expect.arrayContaining(["blob_prefix", "certificate", "volume"]));

    // Pending work runs on the new release's workers: the due jobs complete, the scheduled one waits.
    await runJobs(db);
    const { rows: left } = await db.query("select task_identifier as task, run_at > now() as later from graphile_worker.jobs order by 1");
    expect(left.filter((j) => ["system__noop", "retention__sweep", "certificates__expire", "volumes__workers"].includes(j.task))).toEqual(
      [],
    );
    expect(left).toContainEqual({ task: "tuf__publish", later: true });
    const { rows: ran } = await db.query(
      "select task, status from gk_public.activations where id > 1003 and task in ('retention__sweep', 'certificates__expire', 'volumes__workers') order by task",
    );
    expect(ran).toEqual([
      { task: "certificates__expire", status: "succeeded" },
      { task: "retention__sweep", status: "succeeded" },
      { task: "volumes__workers", status: "succeeded" },
    ]);

    // Rolling the migrations back on this populated database (a development tool: production goes
    // back by restoring the backup taken before the upgrade, README "Upgrades", since the newer
    // release's stored logic stays after a down): every down migration of the upgrade runs on real rows and keeps the old release's rows (on its columns) that the upgrade and
    // the jobs left as they were (a registry row an up added goes with its down), and the
    // upgrade runs again on top of it.
    const kept = new Map<string, string[]>();
    for (const [t, cols] of before) {
      if (REWRITTEN.includes(t)) continue;
      const now = await rowsOf(db, t, cols);
      kept.set(
        t,
        snapshot.get(t)!.filter((r) => {
          const i = now.indexOf(r);
          if (i >= 0) now.splice(i, 1);
          return i >= 0;
        }),
      );
    }
    const undone = await migrateDown(db.url, upgrade.migrationsRun.length);
    expect(undone).toEqual([...upgrade.migrationsRun].reverse());
    expect(await lostRows(db, before, kept)).toEqual({});
    const again = await migrate(db.url);
    expect(again.migrationsRun).toEqual(upgrade.migrationsRun);
  });
});
