// A migrated scratch database for a benchmark: on the server named by DATABASE_URL, else on the
// local server at 127.0.0.1:5432 if it answers, else on an embedded PostgreSQL in a temp dir.
// `drop()` removes the database (and the embedded server) again.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { migrate } from "../../src/db/migrate.ts";

export interface ScratchDb {
  url: string;
  /** "server" or "embedded", for the machine line of a report. */
  where: string;
  drop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function scratchDatabase(): Promise<ScratchDb> {
  let serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  let stopServer = async () => {};
  let where = "server";
  if (!(await answers(serverUrl))) {
    if (process.env.DATABASE_URL) throw new Error(`DATABASE_URL does not answer: ${process.env.DATABASE_URL}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bench-pg-"));
    fs.chmodSync(dir, 0o755);
    const embedded = await startEmbeddedPostgres(path.join(dir, "data"), { persistent: false });
    serverUrl = embedded.url;
    where = "embedded";
    stopServer = async () => {
      await embedded.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    };
  }
  const name = `gk_bench_${crypto.randomBytes(4).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`create database ${name}`);
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  await migrate(u.toString());
  return {
    url: u.toString(),
    where,
    async drop() {
      await admin(`drop database if exists ${name} with (force)`);
      await stopServer();
    },
  };
}
