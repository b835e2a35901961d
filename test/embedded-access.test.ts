// The embedded PostgreSQL is reachable only by the user who runs Groundskeeper: a random password
// in a 0600 file, scram-sha-256, 127.0.0.1 only and no unix socket. Checked as another OS user
// (`nobody`, through util-linux's setpriv, when the tests run as root) and with wrong passwords.
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedFiles, type EmbeddedDb, startEmbeddedPostgres } from "../src/db/embedded.ts";
import { cliEnv, CLI, ROOT } from "./helpers/cli.ts";

const execFileAsync = promisify(execFile);
const asRoot = process.getuid?.() === 0;
const setpriv = spawnSync("setpriv", ["--version"]).status === 0;

async function loginError(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on("error", () => {});
  try {
    await c.connect();
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

describe("the embedded PostgreSQL", () => {
  let dir: string;
  let dataDir: string;
  let db: EmbeddedDb;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-access-"));
    fs.chmodSync(dir, 0o755); // as under a clone anyone may read: only the files' modes protect it
    dataDir = path.join(dir, "data");
    db = await startEmbeddedPostgres(dataDir, { persistent: false });
  });
  afterAll(async () => {
    await db?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("keeps its port and password in files only the owner can read", () => {
    const files = embeddedFiles(dataDir);
    for (const f of [files.port, files.password]) expect(fs.statSync(f).mode & 0o777, f).toBe(0o600);
    const password = new URL(db.url).password;
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    expect(fs.readFileSync(files.password, "utf8").trim()).toBe(password);
  });

  it("refuses a wrong password, the old fixed one, and no password", async () => {
    const port = new URL(db.url).port;
    expect(await loginError(db.url)).toBeNull();
    for (const pw of ["groundskeeper", "wrong"]) {
      expect(await loginError(`postgres://postgres:${pw}@127.0.0.1:${port}/groundskeeper`)).toBe("28P01");
    }
    expect(await loginError(`postgres://postgres@127.0.0.1:${port}/groundskeeper`)).not.toBeNull();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query(
        `select current_setting('unix_socket_directories') as sockets, current_setting('listen_addresses') as listen,
                (select count(*)::int from pg_hba_file_rules where auth_method <> 'scram-sha-256') as weak_rules`,
      );
      expect(rows[0]).toEqual({ sockets: "", listen: "127.0.0.1", weak_rules: 0 });
    } finally {
      await c.end();
    }
  });

  it.runIf(asRoot && setpriv)("is out of reach of another local user (nobody)", async () => {
    const files = embeddedFiles(dataDir);
    const port = new URL(db.url).port;
    // What an attacker would try: read the files, log in with the old password or a guess, over
    // TCP and over the default socket directory.
    const attack = `
      const fs = require("node:fs");
      const { Client } = require(${JSON.stringify(path.join(ROOT, "node_modules/pg"))});
      const read = (f) => { try { return fs.readFileSync(f, "utf8"); } catch (e) { return e.code; } };
      const login = async (cfg) => { const c = new Client({ ...cfg, user: "postgres", database: "postgres", connectionTimeoutMillis: 5000 });
        c.on("error", () => {}); try { await c.connect(); await c.end(); return "connected"; } catch (e) { return e.code ?? e.message; } };
      (async () => console.log(JSON.stringify({
        port: read(${JSON.stringify(files.port)}), password: read(${JSON.stringify(files.password)}),
        tcp: await login({ host: "127.0.0.1", port: ${port}, password: "groundskeeper" }),
        guessed: await login({ host: "127.0.0.1", port: ${port}, password: "postgres" }),
        socket: await login({ host: "/tmp", port: ${port}, password: "groundskeeper" }),
      })))();`;
    const r = await execFileAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", attack], {
      cwd: "/",
      timeout: 30_000,
    });
    const seen = JSON.parse(r.stdout);
    expect(seen.port).toBe("EACCES");
    expect(seen.password).toBe("EACCES");
    expect(seen.tcp).toBe("28P01");
    expect(seen.guessed).toBe("28P01");
    expect(seen.socket).toBe("ENOENT"); // no unix socket at all
  });
});

describe.runIf(asRoot)("a checkout under a directory only root can enter", () => {
  it("gives one clear line instead of failing inside initdb", { timeout: 60_000 }, () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "gk-private-clone-")); // mode 0700
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "gk-home-"));
    fs.chmodSync(home, 0o755);
    try {
      const clone = path.join(parent, "groundskeeper");
      fs.mkdirSync(clone);
      // A clone with its own node_modules (hard links: fast, no copy of the binaries).
      spawnSync("cp", ["-al", path.join(ROOT, "node_modules"), clone]);
      for (const f of ["src", "migrations", "sql", "tasks", "crontab", "package.json"]) {
        fs.cpSync(path.join(ROOT, f), path.join(clone, f), { recursive: true });
      }
      const r = spawnSync(process.execPath, [path.join(clone, path.relative(ROOT, CLI)), "token", "list"], {
        cwd: clone,
        env: cliEnv({ GROUNDSKEEPER_HOME: path.join(home, "home") }),
        encoding: "utf8",
        timeout: 50_000,
      });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(
        /^groundskeeper: the embedded PostgreSQL runs as user 'postgres' under root, and 'postgres' cannot enter .*gk-private-clone-/,
      );
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
