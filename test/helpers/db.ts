// Per-test-file database: a clone of the migrated template, dropped when the file is done.
import crypto from "node:crypto";
import type pg from "pg";
import { afterAll, inject } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { adminQuery, withDatabase } from "./global-setup.ts";

export interface TestDb {
  url: string;
  name: string;
  pool: pg.Pool;
  query<R extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** Clones the template into a fresh database for this test file. Call at module top level. */
/**
 * A database of its own for a test file. `settings` (e.g. `groundskeeper.bin_lease`) are set on
 * the database before any connection opens, so every session of the pool, of workers and of CLI
 * processes has them (an ALTER DATABASE reaches only sessions opened after it).
 */
export async function createTestDb(opts: { settings?: Record<string, string> } = {}): Promise<TestDb> {
  const server = inject("pgServerUrl");
  const name = `gk_test_${crypto.randomBytes(5).toString("hex")}`;
  await adminQuery(server, `create database ${name} template ${inject("templateDb")}`);
  for (const [key, value] of Object.entries(opts.settings ?? {})) {
    if (!/^[a-z_]+(\.[a-z_]+)?$/.test(key)) throw new Error(`not a setting name: ${key}`);
    await adminQuery(server, `alter database ${name} set ${key} = '${value.replaceAll("'", "''")}'`);
  }
  const url = withDatabase(server, name);
  const pool = createPool(url, 10);
  afterAll(async () => {
    await pool.end();
    await adminQuery(server, `drop database if exists ${name} with (force)`);
  });
  return { url, name, pool, query: (sql, params) => pool.query(sql, params as unknown[]) };
}

/** An empty database on the test server (for migration tests that start from nothing). */
export async function createEmptyDb(): Promise<{ url: string; drop(): Promise<void> }> {
  const server = inject("pgServerUrl");
  const name = `gk_test_empty_${crypto.randomBytes(5).toString("hex")}`;
  await adminQuery(server, `create database ${name}`);
  return { url: withDatabase(server, name), drop: () => adminQuery(server, `drop database if exists ${name} with (force)`) };
}
