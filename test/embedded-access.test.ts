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
import { embeddedFiles, type EmbeddedDb, freePort, loadEmbeddedPostgres, startEmbeddedPostgres } from "../src/db/embedded.ts";
import { API_LOGIN_ROLE, ensureEmbeddedApiLogin } from "../src/db/embedded-api-login.ts";
import { ensureEmbeddedPeerLogin, PEER_LOGIN_ROLE } from "../src/db/embedded-peer-login.ts";
import { createPool } from "../src/db/pool.ts";
import { listenerLogin } from "../src/cli/parts.ts";
import { migrate } from "../src/db/migrate.ts";
import { API_APPLICATION_NAME } from "../src/server/api-role.ts";
import { checkPeerSession, peerConnectionString } from "../src/peers/peer-role.ts";
import { startAdminServer } from "../src/server/server.ts";
import { cliEnv, CLI, ROOT } from "./helpers/cli.ts";
import { testServices } from "./helpers/jobs.ts";

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

  it("gives the admin server a login role of its own that is no superuser and reaches nothing private", { timeout: 120_000 }, async () => {
    await migrate(db.url);
    const apiUrl = await ensureEmbeddedApiLogin(db.url, dataDir);
    const files = embeddedFiles(dataDir);
    expect(fs.statSync(files.apiPassword).mode & 0o777).toBe(0o600);
    expect(new URL(apiUrl).password).toBe(fs.readFileSync(files.apiPassword, "utf8").trim());
    expect(new URL(apiUrl).password).not.toBe(new URL(db.url).password);
    expect(await ensureEmbeddedApiLogin(db.url, dataDir)).toBe(apiUrl); // idempotent, same password
    const owner = new pg.Client({ connectionString: db.url });
    await owner.connect();
    const server = await startAdminServer({
      databaseUrl: db.url,
      apiDatabaseUrl: apiUrl,
      host: "127.0.0.1",
      port: 0,
      services: testServices(),
    });
    try {
      const { rows: role } = await owner.query(
        `select rolsuper, rolinherit, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication, rolpassword like 'SCRAM-SHA-256$%' as scram,
                array(select b.rolname::text from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = r.oid order by 1) as member_of
           from pg_authid r where rolname = $1`,
        [API_LOGIN_ROLE],
      );
      expect(role[0]).toEqual({
        rolsuper: false,
        rolinherit: false,
        rolcreatedb: false,
        rolcreaterole: false,
        rolbypassrls: false,
        rolreplication: false,
        scram: true,
        member_of: ["gk_admin", "gk_api", "gk_viewer"],
      });
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
      // Every connection of the server, as the database sees it.
      const { rows: seen } = await owner.query(
        "select distinct usename::text from pg_stat_activity where datname = current_database() and application_name = $1",
        [API_APPLICATION_NAME],
      );
      expect(seen.map((r) => r.usename)).toEqual([API_LOGIN_ROLE]);
      const attempt = async (sql: string) =>
        server.pool.query(sql).then(
          () => "allowed",
          (e) => (e as { code?: string }).code,
        );
      expect(await attempt("copy (select 1) to program 'true'")).toBe("42501");
      expect(await attempt("set role postgres")).toBe("42501");
      expect(await attempt("select token_sha256 from gk_private.api_tokens")).toBe("42501");
      expect(await attempt("create table gk_public.x (id int)")).toBe("42501");
    } finally {
      await server.close();
      await owner.end();
    }
  });

  it("gives the mutual-TLS listeners a login of their own, a member of gk_peer only, that cannot switch to gk_admin", async () => {
    const owner = new pg.Client({ connectionString: db.url });
    await owner.connect();
    // As a cluster of the release before left it: the admin server's login was the listeners' too.
    await owner.query(`grant gk_peer to ${API_LOGIN_ROLE}`);
    const apiUrl = await ensureEmbeddedApiLogin(db.url, dataDir);
    const peerUrl = await ensureEmbeddedPeerLogin(db.url, dataDir);
    const files = embeddedFiles(dataDir);
    expect(fs.statSync(files.peerPassword).mode & 0o777).toBe(0o600);
    expect(new URL(peerUrl).password).toBe(fs.readFileSync(files.peerPassword, "utf8").trim());
    expect(new Set([new URL(peerUrl).password, new URL(apiUrl).password, new URL(db.url).password]).size).toBe(3);
    expect(await ensureEmbeddedPeerLogin(db.url, dataDir)).toBe(peerUrl); // idempotent, same password
    // The login the CLI gives the listeners on the embedded database (src/cli/parts.ts).
    const login = listenerLogin({ url: db.url, apiUrl, peerUrl, kind: "embedded", dataDir, close: async () => {} }, "robot API");
    expect(login).toEqual({ url: peerUrl, own: true });
    const pool = createPool(peerConnectionString(login.url), 1);
    try {
      const { rows } = await owner.query(
        `select r.rolname::text as login, r.rolsuper, r.rolinherit, r.rolpassword like 'SCRAM-SHA-256$%' as scram,
                array(select b.rolname::text from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = r.oid order by 1) as member_of
           from pg_authid r where rolname in ($1, $2) order by 1`,
        [API_LOGIN_ROLE, PEER_LOGIN_ROLE],
      );
      expect(rows).toEqual([
        { login: API_LOGIN_ROLE, rolsuper: false, rolinherit: false, scram: true, member_of: ["gk_admin", "gk_api", "gk_viewer"] },
        { login: PEER_LOGIN_ROLE, rolsuper: false, rolinherit: false, scram: true, member_of: ["gk_peer"] },
      ]);
      expect(await checkPeerSession(pool, "robot API", true)).toMatchObject({ sessionUser: PEER_LOGIN_ROLE, currentUser: "gk_peer" });
      const attempt = (sql: string) =>
        pool.query(sql).then(
          () => "allowed",
          (e) => (e as { code?: string }).code,
        );
      for (const role of ["gk_admin", "gk_api", "gk_viewer", "postgres"])
        expect([role, await attempt(`set role ${role}`)]).toEqual([role, "42501"]);
    } finally {
      await pool.end();
      await owner.end();
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
        apiPassword: read(${JSON.stringify(files.apiPassword)}),
        peerPassword: read(${JSON.stringify(files.peerPassword)}),
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
    expect(seen.apiPassword).toBe("EACCES");
    expect(seen.peerPassword).toBe("EACCES");
    expect(seen.tcp).toBe("28P01");
    expect(seen.guessed).toBe("28P01");
    expect(seen.socket).toBe("ENOENT"); // no unix socket at all
  });
});

describe("a cluster made before per-cluster passwords", () => {
  it("is adopted on its next start: the fixed password stops working, scram-sha-256 everywhere", { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-legacy-"));
    fs.chmodSync(dir, 0o755);
    const dataDir = path.join(dir, "data");
    try {
      // What src/db/embedded.ts used to make: password 'groundskeeper', 'password' auth.
      const EmbeddedPostgres = await loadEmbeddedPostgres();
      const port = await freePort();
      const old = new EmbeddedPostgres({
        databaseDir: dataDir,
        user: "postgres",
        password: "groundskeeper",
        authMethod: "password",
        port,
        createPostgresUser: asRoot,
        onLog: () => {},
        onError: () => {},
      });
      await old.initialise();
      await old.start();
      const legacyUrl = `postgres://postgres:groundskeeper@127.0.0.1:${port}/postgres`;
      expect(await loginError(legacyUrl)).toBeNull();
      await old.stop();
      fs.writeFileSync(`${dataDir}.port`, String(port));

      const db = await startEmbeddedPostgres(dataDir);
      try {
        expect(await loginError(db.url)).toBeNull();
        expect(await loginError(legacyUrl)).toBe("28P01");
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        const { rows } = await c.query("select count(*)::int as n from pg_hba_file_rules where auth_method <> 'scram-sha-256'");
        await c.end();
        expect(rows[0].n).toBe(0);
      } finally {
        await db.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(asRoot)("a checkout under a directory only root can enter", () => {
  it("gives one clear line instead of failing inside initdb", { timeout: 180_000 }, () => {
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
        timeout: 170_000,
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
