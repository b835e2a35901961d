// `groundskeeper migrate`: worker schema, then versioned migrations, then the stored logic in sql/,
// then the registry of reconcilers (gk_public.reconcilers) from tasks/ and the crontab.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runMigrations } from "graphile-worker";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { quietWorkerLogger } from "../lib/log.ts";
import { registerReconcilers } from "../worker/reconciler-registry.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MIGRATIONS_DIR = path.join(root, "migrations");
export const SQL_DIR = path.join(root, "sql");

// Any fixed number: every migrating process serialises on it (parallel deploys queue, not fail).
const STORED_LOGIC_LOCK = 4_711_0001;

export interface MigrateResult {
  migrationsRun: string[];
  sqlFilesApplied: string[];
}

type Log = (msg: string) => void;

export async function migrate(databaseUrl: string, log: Log = () => {}): Promise<MigrateResult> {
  // The worker schema goes first: stored logic calls graphile_worker.add_job(s).
  await runMigrations({ connectionString: databaseUrl, logger: quietWorkerLogger() });
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: "up",
    migrationsTable: "pgmigrations",
    migrationsSchema: "public",
    advisoryLockMode: "wait",
    // Migration numbers are handed out in bands per area (docs/conventions.md), so a release
    // brings migrations numbered below ones an earlier release ran (0063 after 0121): every
    // migration not yet run runs, in name order (test/upgrade/upgrade.test.ts).
    checkOrder: false,
    log: () => {},
    logger: silentLogger,
  });
  for (const m of ran) log(`migration ${m.name}`);
  const applied = await applyStoredLogic(databaseUrl, ran.length > 0);
  for (const f of applied) log(`stored logic ${f}`);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await registerReconcilers(client);
  } finally {
    await client.end();
  }
  return { migrationsRun: ran.map((m) => m.name), sqlFilesApplied: applied };
}

/** Rolls the last `count` versioned migrations back, every one by default (for the up → down → up
 * check and for dev resets). */
export async function migrateDown(databaseUrl: string, count = Infinity): Promise<string[]> {
  if (count !== Infinity && !(Number.isInteger(count) && count >= 0)) {
    throw new Error(`migrateDown: count must be a whole number ≥ 0 or Infinity, not ${count}`);
  }
  // node-pg-migrate reads a count of 0 as "every migration": none asked, none undone.
  if (count === 0) return [];
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: "down",
    count,
    migrationsTable: "pgmigrations",
    migrationsSchema: "public",
    advisoryLockMode: "wait",
    // As for `migrate`: numbers come in bands, so the last migrations run are not the highest
    // numbers; down undoes them in the reverse of the order they ran.
    checkOrder: false,
    log: () => {},
    logger: silentLogger,
  });
  return ran.map((m) => m.name);
}

export function storedLogicFiles(): { name: string; sql: string; checksum: string }[] {
  return fs
    .readdirSync(SQL_DIR)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(SQL_DIR, name), "utf8");
      return { name, sql, checksum: crypto.createHash("sha256").update(sql).digest("hex") };
    });
}

/**
 * Re-applies sql/ in filename order, in one transaction. A file is applied when its checksum
 * changed; every file after the first changed one is applied too, because later files may
 * depend on objects an earlier file dropped and recreated. After a migration ran, all are.
 */
export async function applyStoredLogic(databaseUrl: string, force = false): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("begin");
    await client.query("select pg_advisory_xact_lock($1)", [STORED_LOGIC_LOCK]);
    const known = new Map<string, string>(
      (await client.query("select file, checksum from gk_private.stored_logic")).rows.map((r) => [r.file, r.checksum]),
    );
    const files = storedLogicFiles();
    const firstChanged = force ? 0 : files.findIndex((f) => known.get(f.name) !== f.checksum);
    const toApply = firstChanged < 0 ? [] : files.slice(firstChanged);
    for (const f of toApply) {
      try {
        await client.query(f.sql);
      } catch (e) {
        throw new Error(`sql/${f.name}: ${(e as Error).message}`);
      }
      await client.query(
        `insert into gk_private.stored_logic (file, checksum) values ($1, $2)
         on conflict (file) do update set checksum = excluded.checksum, applied_at = now()`,
        [f.name, f.checksum],
      );
    }
    await client.query("delete from gk_private.stored_logic where not (file = any($1))", [files.map((f) => f.name)]);
    await client.query("commit");
    return toApply.map((f) => f.name);
  } catch (e) {
    await client.query("rollback").catch(() => {});
    throw e;
  } finally {
    await client.end();
  }
}

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };
