// Per release: a committed snapshot of an empty database migrated by that release, which
// test/upgrade/upgrade.test.ts fills through the old schema and migrates with the current code.
//   node scripts/snapshot-release.ts <commit>      → test/upgrade/releases/<short commit>.sql
// The release's tree comes from `git archive` (its migrations, sql/, tasks/, crontab and the code
// that migrates them) into a temporary directory, with this checkout's node_modules; a scratch
// database on SNAPSHOT_DATABASE_URL / TEST_DATABASE_URL / DATABASE_URL (any database of the
// server; default postgres://postgres@127.0.0.1:5432/postgres) is migrated with it and dumped with
// pg_dump (plain SQL with INSERTs, so a plain client loads it; no owners; the grants stay; no
// column compression, which a server built without lz4 — the embedded one — refuses). Needs git and pg_dump; the
// test needs neither.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const commit = process.argv[2];
if (!commit) {
  console.error("usage: node scripts/snapshot-release.ts <commit>");
  process.exit(1);
}
const short = execFileSync("git", ["rev-parse", "--short=7", `${commit}^{commit}`], { cwd: root, encoding: "utf8" }).trim();
const server =
  process.env.SNAPSHOT_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const dbName = `snapshot_${short}_${crypto.randomBytes(3).toString("hex")}`;
const dbUrl = (() => {
  const u = new URL(server);
  u.pathname = `/${dbName}`;
  return u.toString();
})();

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const tree = fs.mkdtempSync(path.join(os.tmpdir(), `gk-release-${short}-`));
try {
  const archive = execFileSync("git", ["archive", "--format=tar", short], { cwd: root, maxBuffer: 1 << 30 });
  execFileSync("tar", ["-x", "-C", tree], { input: archive });
  fs.symlinkSync(path.join(root, "node_modules"), path.join(tree, "node_modules"));
  await admin(`create database ${dbName}`);
  try {
    execFileSync(process.execPath, [path.join(tree, "src/cli/main.ts"), "migrate"], {
      cwd: tree,
      env: { ...process.env, DATABASE_URL: dbUrl, LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const dump = execFileSync("pg_dump", ["--no-owner", "--inserts", "--no-toast-compression", "--dbname", dbUrl], {
      encoding: "utf8",
      maxBuffer: 1 << 30,
    });
    const out = path.join(root, "test/upgrade/releases", `${short}.sql`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const header = `-- The database of release ${short}, freshly migrated (written by scripts/snapshot-release.ts ${short}).\n-- Loaded by test/upgrade/upgrade.test.ts; regenerate, never edit.\n`;
    fs.writeFileSync(out, header + dump);
    console.log(`wrote ${path.relative(root, out)} (${dump.length} bytes)`);
  } finally {
    await admin(`drop database if exists ${dbName} with (force)`);
  }
} finally {
  fs.rmSync(tree, { recursive: true, force: true });
}
