// No connection of the mutual-TLS listeners runs as the database owner: the robot API's and the
// peer gateway's routes query through pools whose connections start as gk_peer
// (src/peers/peer-role.ts), which reaches nothing private beyond sql/930_peer_role.sql, and a
// listener on any other connections does not start. Once with the test server's superuser URL
// (the pool switches to gk_peer), once with a login role of the listeners' own (as
// PEER_DATABASE_URL or the embedded gk_peer_login: a member of gk_peer only), made per test file
// under a random name because roles are cluster-wide.
// Real listeners and real certificates: a robot's and an enrolled worker's, issued by the local CA.
import crypto from "node:crypto";
import https from "node:https";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeSerial } from "../src/adapters/ca/types.ts";
import { createPool } from "../src/db/pool.ts";
import { ensureDirector } from "../src/rollouts/director-keys.ts";
import { SecretBox } from "../src/lib/secrets.ts";
import { type PeerRoute, startPeerGateway } from "../src/peers/gateway.ts";
import type { MutualTlsListener } from "../src/peers/listener.ts";
import { checkPeerSession, peerConnectionString } from "../src/peers/peer-role.ts";
import { apiConnectionString } from "../src/server/api-role.ts";
import { type RobotRoute, startRobotApi } from "../src/peers/robot-api.ts";
import { expectPeer } from "../src/peers/tls.ts";
import { cliEnv, spawnCli, tempHome } from "./helpers/cli.ts";
import { createTestDb } from "./helpers/db.ts";
import { insertRobots, insertTeam } from "./helpers/fixtures/index.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "./robots/helpers/robot-api.ts";

const db = await createTestDb();

const OWN_APPLICATION_NAME = "groundskeeper peers (own login)";
const login = `gk_peer_t_${crypto.randomBytes(5).toString("hex")}`;
const password = crypto.randomBytes(12).toString("hex");
await db.query(`create role ${login} login noinherit password '${password}'`);
// As an operator makes PEER_DATABASE_URL's role (README, "Database roles").
await db.query(`grant gk_peer to ${login}`);
// And API_DATABASE_URL's role, for `serve` below.
const apiLogin = `gk_api_t_${crypto.randomBytes(5).toString("hex")}`;
await db.query(`create role ${apiLogin} login noinherit password '${password}'`);
await db.query(`grant gk_api, gk_admin, gk_viewer to ${apiLogin}`);
const masterKey = crypto.randomBytes(32);
const withLogin = (user: string, application: string) => {
  const u = new URL(db.url);
  u.username = user;
  u.password = password;
  u.searchParams.set("application_name", application);
  return u.toString();
};

// Who a route's connection is, after RESET ROLE (which returns to the startup role, not the login).
const WHO = `select current_user::text as role, session_user::text as login,
                    (select rolsuper from pg_roles where rolname = current_user) as superuser`;
async function who(pool: pg.Pool): Promise<unknown> {
  const c = await pool.connect();
  try {
    await c.query("reset role");
    return (await c.query(WHO)).rows[0];
  } finally {
    c.release();
  }
}
const robotWho: RobotRoute = { method: "GET", path: /^\/x-who$/, handle: async ({ db }) => ({ status: 200, body: await who(db) }) };
const peerWho: PeerRoute = {
  method: "GET",
  path: /^\/x-who$/,
  profile: "worker",
  handle: async ({ db }) => ({ status: 200, body: await who(db) }),
};

async function asPool(pool: pg.Pool, sql: string): Promise<{ rows?: unknown[]; code?: string }> {
  try {
    return { rows: (await pool.query(sql)).rows };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? (e as Error).message };
  }
}

let h: RobotApiHarness;
let robot: RobotCredentials;
let worker: { keyPem: string; certPem: string };

function get(url: string, creds: { keyPem: string; certPem: string }): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      ca: h.caPem,
      key: creds.keyPem,
      cert: creds.certPem,
      checkServerIdentity: expectPeer("controller"),
      agent: false,
    });
    req.on("response", (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }));
    });
    req.on("error", reject);
    req.end();
  });
}

interface Listeners {
  pool: pg.Pool;
  robotApi: MutualTlsListener;
  gateway: MutualTlsListener;
}
const started: Listeners[] = [];

async function listen(url: string): Promise<Listeners> {
  const pool = createPool(peerConnectionString(url), 4);
  const identity = h.services.controller!;
  const common = { db: pool, identity, host: "127.0.0.1", port: 0, log: h.services.log };
  const robotApi = await startRobotApi({ ...common, routes: [robotWho], services: h.services });
  const gateway = await startPeerGateway({ ...common, routes: [peerWho], crlPem: () => h.ca.crlPem() });
  const l = { pool, robotApi, gateway };
  started.push(l);
  return l;
}

beforeAll(async () => {
  h = await setupRobotApi(db, { name: "peer-roles", secrets: new SecretBox(masterKey), listen: false });
  const team = (await insertTeam(db, { name: "peer-roles" })).id;
  const [r] = await insertRobots(db, { team });
  robot = await h.enroll(r!.id);
  // A worker enrolled as `groundskeeper workers enroll` does, for the gateway.
  const key = h.newKey();
  const { rows } = await db.query("select id from gk_public.enroll_worker($1, $2)", ["peer-roles-w", key.publicKeyPem]);
  await h.runJobs();
  const pem = (await db.query("select gk_public.download_certificate($1) as pem", [rows[0].id])).rows[0].pem;
  worker = { keyPem: key.keyPem, certPem: pem };
});

afterAll(async () => {
  for (const l of started) {
    await l.robotApi.close();
    await l.gateway.close();
    await l.pool.end();
  }
  await db.query(`drop role if exists ${login}`);
  await db.query(`drop role if exists ${apiLogin}`);
});

for (const [mode, url, loginName] of [
  ["logging in with DATABASE_URL", () => db.url, "postgres"],
  ["logging in as a role of their own (PEER_DATABASE_URL)", () => withLogin(login, OWN_APPLICATION_NAME), login],
] as const) {
  describe(`the mutual-TLS listeners ${mode}`, () => {
    let l: Listeners;
    beforeAll(async () => {
      l = await listen(url());
    });

    it("run the robot API's and the gateway's routes as gk_peer, not a superuser, even after RESET ROLE", async () => {
      const expected = { role: "gk_peer", login: loginName, superuser: false };
      expect(await get(`${l.robotApi.url}/x-who`, robot)).toEqual({ status: 200, body: expected });
      expect(await get(`${l.gateway.url}/x-who`, worker)).toEqual({ status: 200, body: expected });
    });

    it("cannot read tokens or keys, call private recorders, write tables or run programs", async () => {
      const { pool } = l;
      expect(await asPool(pool, "select token_sha256 from gk_private.api_tokens")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select * from gk_private.master_key")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select sealed_private_key from gk_private.tuf_online_keys")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select sealed_key from gk_private.controller_keys")).toEqual({ code: "42501" });
      // The built-in CA's key is readable sealed (the listeners' CA signs the CRL), not writable; leaf keys are not readable.
      expect(await asPool(pool, "update gk_private.local_ca_authorities set private_key_sealed = 'v1:x'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select pem from gk_private.local_ca_certificates")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select sealed_key from gk_private.certificate_private_keys")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select * from gk_public.audit_events")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select name from gk_public.teams")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select count(*) from graphile_worker.jobs")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select gk_private.api_token_create('x', 'gk_admin', '\\x00')")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select gk_private.enqueue('system__noop', '{}')")).toEqual({ code: "42501" });
      expect(await asPool(pool, "copy (select 1) to program 'true'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "update gk_public.workers set address = 'https://evil'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "update gk_public.certificates set status = 'issued'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "delete from gk_public.robots")).toEqual({ code: "42501" });
      expect(
        await asPool(
          pool,
          "insert into gk_public.robot_manifests (robot_id, team_id, valid, body) values (gen_random_uuid(), gen_random_uuid(), true, '{}')",
        ),
      ).toEqual({ code: "42501" });
      expect(await asPool(pool, "create table gk_public.x (i int)")).toEqual({ code: "42501" });
      expect((await db.query("select count(*)::int as n from gk_private.api_tokens where name = 'x'")).rows[0].n).toBe(0);
    });
  });
}

describe("gk_peer's entry points", () => {
  it("are no one else's: gk_api and a GraphQL viewer cannot call them, nor gk_peer gk_api's", async () => {
    const calls = [
      "select * from gk_private.certificate_peer('00')",
      "select * from gk_private.robot_certificate_identity('00')",
      "select * from gk_private.worker_registered(gen_random_uuid(), 'https://evil', 'x')",
      "select gk_private.worker_heartbeat(gen_random_uuid(), 0, 0)",
      "select * from gk_private.export_node_registered(gen_random_uuid(), 'https://evil', 'x')",
      "select gk_private.export_node_heartbeat(gen_random_uuid(), 0)",
      "select * from gk_private.robot_manifest_received(gen_random_uuid(), gen_random_uuid(), true, '{}')",
      "select * from gk_private.robot_current_certificate(gen_random_uuid())",
      "select * from gk_private.robot_presented('00', '\\x00')",
      "select * from gk_private.robot_presenting('00', '\\x00')",
      "select * from gk_private.robot_presented_current_certificate('00', '\\x00')",
      "select * from gk_private.robot_presented_certificate('00', '\\x00', gen_random_uuid())",
      "select gk_private.robot_presented_download('00', '\\x00', gen_random_uuid())",
      "select * from gk_private.robots_certificate_replacements(array[gen_random_uuid()])",
      "select gk_private.director_robot_online_key('00', '\\x00', 'x')",
    ];
    // And the admin server's entry points are not gk_peer's (made SECURITY DEFINER in sql/920).
    const apiCalls = [
      "select * from gk_private.queue_jobs_by_task()",
      "select * from gk_private.activations_latest()",
      "select gk_private.certificate_is_dirty(gen_random_uuid())",
      "select * from gk_private.api_token_lookup('\\x00')",
    ];
    const api = createPool(apiConnectionString(db.url), 1);
    const viewer = createPool(`${db.url}${db.url.includes("?") ? "&" : "?"}options=${encodeURIComponent("-c role=gk_viewer")}`, 1);
    const peer = createPool(peerConnectionString(db.url), 1);
    try {
      for (const pool of [api, viewer]) {
        for (const sql of calls) expect([sql, await asPool(pool, sql)]).toEqual([sql, { code: "42501" }]);
      }
      for (const sql of apiCalls) expect([sql, await asPool(peer, sql)]).toEqual([sql, { code: "42501" }]);
    } finally {
      await api.end();
      await viewer.end();
      await peer.end();
    }
  });
});

describe("a login role of the listeners' own", () => {
  it("shows in pg_stat_activity as that role, no superuser, and cannot switch to the owner or the admin API's roles", async () => {
    const l = started.find((s) => s.pool.options.connectionString?.includes(login))!;
    await get(`${l.robotApi.url}/x-who`, robot);
    const { rows } = await db.query<{ usename: string; superuser: boolean }>(
      `select distinct a.usename::text, r.rolsuper as superuser from pg_stat_activity a join pg_roles r on r.oid = a.usesysid
        where a.datname = current_database() and a.application_name = $1`,
      [OWN_APPLICATION_NAME],
    );
    expect(rows).toEqual([{ usename: login, superuser: false }]);
    for (const role of ["postgres", "gk_admin", "gk_api", "gk_viewer"]) {
      expect([role, await asPool(l.pool, `set role ${role}`)]).toEqual([role, { code: "42501" }]);
    }
    expect(await checkPeerSession(l.pool, "robot API", true)).toMatchObject({ sessionUser: login, currentUser: "gk_peer" });
  });

  it("is refused, with one line, when it could switch to gk_admin (the admin API's login) or is a superuser", async () => {
    const shared = createPool(peerConnectionString(withLogin(apiLogin, "groundskeeper peers (api login)")), 1);
    await db.query(`grant gk_peer to ${apiLogin}`);
    try {
      await expect(checkPeerSession(shared, "robot API", true)).rejects.toThrow(
        new RegExp(
          `^the robot API logs in as ${apiLogin}, which can switch to gk_admin, gk_api, gk_viewer: give the listeners a login that is a member of gk_peer only \\(see README, "Database roles"\\)$`,
        ),
      );
      // The same login is fine where the owner's role is the fallback (not a login of their own).
      await expect(checkPeerSession(shared, "robot API")).resolves.toMatchObject({ sessionUser: apiLogin });
    } finally {
      await db.query(`revoke gk_peer from ${apiLogin}`);
      await shared.end();
    }
    const superuser = createPool(peerConnectionString(db.url), 1);
    try {
      await expect(checkPeerSession(superuser, "peer gateway", true)).rejects.toThrow(
        /^the peer gateway logs in as postgres, a superuser: give the listeners a login that is a member of gk_peer only/,
      );
    } finally {
      await superuser.end();
    }
  });
});

describe("the directors' sealed keys under gk_peer", () => {
  it("are not readable directly; a robot's certificate reads its own team's online key only, and no other certificate", async () => {
    // Two teams, each with a director and an enrolled robot.
    const robots: { team: string; certificateId: string; serial: string; der: Buffer; onlineKeyId: string; sealed: string }[] = [];
    for (const name of ["peer-keys-a", "peer-keys-b"]) {
      const team = (await insertTeam(db, { name })).id;
      const [r] = await insertRobots(db, { team });
      const creds = await h.enroll(r!.id);
      const c = await db.pool.connect();
      try {
        await ensureDirector(c, h.services.secrets!, team);
      } finally {
        c.release();
      }
      const { rows } = await db.query(
        `select k.key_id, k.sealed_private_key from gk_public.director_repositories p
           join gk_private.director_keys k on k.team_id = p.team_id and k.key_id = p.online_key_id where p.team_id = $1`,
        [team],
      );
      const x509 = new crypto.X509Certificate(creds.certPem);
      robots.push({
        team,
        certificateId: creds.certificateId,
        serial: normalizeSerial(x509.serialNumber),
        der: x509.raw,
        onlineKeyId: rows[0].key_id,
        sealed: rows[0].sealed_private_key,
      });
    }
    const [a, b] = robots as [(typeof robots)[0], (typeof robots)[0]];
    const peer = createPool(peerConnectionString(withLogin(login, "groundskeeper peers (keys)")), 1);
    const key = async (serial: string, der: Buffer, keyId: string) =>
      (await peer.query("select gk_private.director_robot_online_key($1, $2, $3) as k", [serial, der, keyId])).rows[0].k;
    try {
      for (const sql of [
        "select sealed_private_key from gk_private.director_keys",
        "select team_id, key_id from gk_private.director_keys",
        "select count(*) from gk_private.director_keys",
      ]) {
        expect([sql, await asPool(peer, sql)]).toEqual([sql, { code: "42501" }]);
      }
      // Its own team's online key, for the certificate it presented.
      expect(await key(a.serial, a.der, a.onlineKeyId)).toBe(a.sealed);
      // Not another team's: by that team's key id, by the other robot's serial, or by a
      // certificate that is not the one stored under that serial.
      expect(await key(a.serial, a.der, b.onlineKeyId)).toBeNull();
      expect(await key(b.serial, a.der, b.onlineKeyId)).toBeNull();
      const forged = Buffer.from(b.der);
      forged[forged.length - 1] ^= 1;
      expect(await key(b.serial, forged, b.onlineKeyId)).toBeNull();
      // Nor can it get another robot's certificate to present: no certificate is readable but
      // through the presenting one.
      for (const sql of [
        "select pem from gk_public.certificates",
        "select serial from gk_public.certificates",
        `select pem from gk_private.robot_current_certificate((select robot_id from gk_private.robot_certificate_identity('${b.serial}')))`,
        `select gk_public.download_certificate('${b.certificateId}')`,
      ]) {
        expect([sql, await asPool(peer, sql)]).toEqual([sql, { code: "42501" }]);
      }
      const presented = async (serial: string, der: Buffer, id: string) => ({
        current: (await peer.query("select id from gk_private.robot_presented_current_certificate($1, $2)", [serial, der])).rows,
        status: (await peer.query("select status from gk_private.robot_presented_certificate($1, $2, $3)", [serial, der, id])).rows,
        download: await peer.query("select gk_private.robot_presented_download($1, $2, $3) as pem", [serial, der, id]).then(
          (r) => (r.rows[0].pem as string).slice(0, 27),
          (e) => (e as { code?: string }).code,
        ),
      });
      expect(await presented(a.serial, a.der, a.certificateId)).toEqual({
        current: [{ id: a.certificateId }],
        status: [{ status: "issued" }],
        download: "-----BEGIN CERTIFICATE-----",
      });
      expect(await presented(a.serial, a.der, b.certificateId)).toEqual({
        current: [{ id: a.certificateId }],
        status: [],
        download: "P0002",
      });
      expect(await presented(b.serial, a.der, b.certificateId)).toEqual({ current: [], status: [], download: "P0002" });
      // A revoked certificate reads nothing.
      await db.query("update gk_public.certificates set status = 'revoking' where serial = $1 and profile = 'robot'", [a.serial]);
      expect(await key(a.serial, a.der, a.onlineKeyId)).toBeNull();
    } finally {
      await peer.end();
    }
  });
});

describe("a listener whose connections are not gk_peer", () => {
  it("does not start, with one line, on the owner's connections or a login that is not gk_peer's member", async () => {
    const identity = h.services.controller!;
    const common = { identity, host: "127.0.0.1", port: 0, log: h.services.log };
    await expect(startRobotApi({ ...common, db: db.pool, routes: [], services: h.services })).rejects.toThrow(
      /^the robot API's connections run as postgres, not gk_peer$/,
    );
    await expect(startPeerGateway({ ...common, db: db.pool, routes: [], crlPem: () => h.ca.crlPem() })).rejects.toThrow(
      /^the peer gateway's connections run as postgres, not gk_peer$/,
    );
    const outsider = `gk_peer_n_${crypto.randomBytes(5).toString("hex")}`;
    await db.query(`create role ${outsider} login noinherit password '${password}'`);
    const pool = createPool(peerConnectionString(withLogin(outsider, "groundskeeper peers (outsider)")), 1);
    try {
      await expect(startRobotApi({ ...common, db: pool, routes: [], services: h.services })).rejects.toThrow(
        /^the robot API's connections cannot switch to role gk_peer \(.*\): migrate the database, and make the login role a member \(grant gk_peer to <role>\)$/,
      );
    } finally {
      await pool.end();
      await db.query(`drop role ${outsider}`);
    }
  });
});

describe("groundskeeper serve with PEER_PORT and --robot-port", () => {
  const loginUrl = (user: string) => {
    const u = new URL(db.url);
    u.username = user;
    u.password = password;
    return u.toString();
  };
  const serveEnv = (peerUser: string | undefined) =>
    cliEnv({
      DATABASE_URL: db.url,
      API_DATABASE_URL: loginUrl(apiLogin),
      PEER_DATABASE_URL: peerUser === undefined ? undefined : loginUrl(peerUser),
      GROUNDSKEEPER_HOME: path.join(tempHome(), "home"),
      GK_MASTER_KEY: masterKey.toString("base64"),
      GK_CA_NAME: "peer-roles",
      PEER_PORT: "0",
    });

  it("connects both listeners with PEER_DATABASE_URL's role, running as gk_peer", { timeout: 120_000 }, async () => {
    const serve = spawnCli(["serve", "--port", "0", "--robot-port", "0"], serveEnv(login));
    try {
      const robotApi = (await serve.waitFor(/Robot API: (https:\/\/\S+)/, 90_000))[1]!;
      const gateway = (await serve.waitFor(/Peer gateway: (https:\/\/\S+)/, 90_000))[1]!;
      // The listeners' own CA, on their gk_peer pool: robots' CA certificate, the gateway's CRL.
      const cert = await get(`${robotApi}/robot/v1/certificate`, robot);
      expect(cert).toMatchObject({ status: 200, body: { ca_certificate_pem: h.caPem } });
      const crl = await get(`${gateway}/peer/v1/crl`, worker);
      expect(crl.status).toBe(200);
      expect(crl.body.crl_pem).toContain("BEGIN X509 CRL");
      const { rows } = await db.query<{ usename: string; superuser: boolean }>(
        `select distinct a.usename::text, r.rolsuper as superuser from pg_stat_activity a join pg_roles r on r.oid = a.usesysid
          where a.datname = current_database() and a.application_name = 'groundskeeper peers'`,
      );
      expect(rows).toEqual([{ usename: login, superuser: false }]);
    } finally {
      await serve.stop();
    }
  });

  /** `serve` must stop before the admin API says where it listens, with the one line `line`. */
  async function refused(env: NodeJS.ProcessEnv, line: RegExp): Promise<void> {
    const serve = spawnCli(["serve", "--port", "0", "--robot-port", "0"], env);
    try {
      // waitFor rejects when it exits first.
      expect(
        await serve.waitFor(/GraphiQL:/, 90_000).then(
          () => "started",
          () => "stopped",
        ),
      ).toBe("stopped");
      expect(await serve.exited).toBe(1);
      expect(serve.stderr().trimEnd().split("\n")).toEqual([expect.stringMatching(line)]);
    } finally {
      await serve.stop();
    }
  }

  it("stops with one line when that role is no member of gk_peer, can switch to gk_admin, or is not given", {
    timeout: 180_000,
  }, async () => {
    const outsider = `gk_peer_o_${crypto.randomBytes(5).toString("hex")}`;
    await db.query(`create role ${outsider} login noinherit password '${password}'`);
    try {
      await refused(
        serveEnv(outsider),
        /^groundskeeper: the peer gateway's connections cannot switch to role gk_peer \(.*\): migrate the database, and make the login role a member \(grant gk_peer to <role>\)$/,
      );
      // The admin API's login as the listeners' (as before this release, with gk_peer granted).
      await db.query(`grant gk_peer to ${apiLogin}`);
      await refused(
        serveEnv(apiLogin),
        new RegExp(`^groundskeeper: the peer gateway logs in as ${apiLogin}, which can switch to gk_admin, gk_api, gk_viewer: `),
      );
      // API_DATABASE_URL without PEER_DATABASE_URL: the listeners would have shared it.
      await refused(serveEnv(undefined), /^groundskeeper: the peer gateway needs PEER_DATABASE_URL, a login of the listeners' own /);
    } finally {
      await db.query(`revoke gk_peer from ${apiLogin}`);
      await db.query(`drop role ${outsider}`);
    }
  });
});
