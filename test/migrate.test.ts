import pg from "pg";
import { describe, expect, it } from "vitest";
import { migrate, migrateDown, storedLogicFiles } from "../src/db/migrate.ts";
import { createEmptyDb } from "./helpers/db.ts";

async function schemaFingerprint(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query(`
      select string_agg(x, E'\n' order by x) as fp from (
        select 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text as x
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('gk_public', 'gk_private')
        union all
        select 'fn ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc)
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('gk_public', 'gk_private')
        union all
        select 'tg ' || tgrelid::regclass || ' ' || tgname from pg_trigger where not tgisinternal
      ) s`);
    return rows[0].fp ?? "";
  } finally {
    await c.end();
  }
}

describe("migrate", () => {
  it("migrates an empty database, is a no-op when re-run, and round-trips up → down → up", async () => {
    const db = await createEmptyDb();
    try {
      const first = await migrate(db.url);
      expect(first.migrationsRun.length).toBeGreaterThan(0);
      expect(first.sqlFilesApplied).toEqual(storedLogicFiles().map((f) => f.name));
      const fp1 = await schemaFingerprint(db.url);
      expect(fp1).toContain("rel gk_public.teams r");

      const again = await migrate(db.url);
      expect(again).toEqual({ migrationsRun: [], sqlFilesApplied: [] });
      expect(await schemaFingerprint(db.url)).toBe(fp1);

      // Rolling back none undoes none (an upgrade that ran no migration has nothing to undo).
      expect(await migrateDown(db.url, 0)).toEqual([]);
      expect(await schemaFingerprint(db.url)).toBe(fp1);
      await expect(migrateDown(db.url, -1)).rejects.toThrow(/count/);
      await expect(migrateDown(db.url, 1.5)).rejects.toThrow(/count/);

      const down = await migrateDown(db.url);
      expect(down.length).toBe(first.migrationsRun.length);
      expect(await schemaFingerprint(db.url)).toBe("");

      await migrate(db.url);
      expect(await schemaFingerprint(db.url)).toBe(fp1);
    } finally {
      await db.drop();
    }
  });

  it("lets concurrent migrations queue instead of failing", async () => {
    const db = await createEmptyDb();
    try {
      const results = await Promise.all([migrate(db.url), migrate(db.url), migrate(db.url)]);
      const total = results.reduce((n, r) => n + r.migrationsRun.length, 0);
      expect(total).toBe(results.find((r) => r.migrationsRun.length > 0)!.migrationsRun.length);
    } finally {
      await db.drop();
    }
  });
});
