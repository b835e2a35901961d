// No connection of the admin server runs as the database owner: GraphQL, token lookup, readiness,
// /metrics and the areas' routes all run as gk_api (src/server/api-role.ts), GraphQL requests
// switch on to gk_admin/gk_viewer, and gk_api reaches nothing private beyond its grants
// (sql/920_api_role.sql). Once with the test server's superuser URL (the server switches to
// gk_api), once with a login role of the API's own (API_DATABASE_URL), made per test file under
// a random name because roles are cluster-wide.
import crypto from "node:crypto";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCa } from "../src/adapters/ca/local.ts";
import { x509 } from "../src/adapters/ca/x509.ts";
import { areaServerParts } from "../src/areas.ts";
import { createPool } from "../src/db/pool.ts";
import { apiConnectionString } from "../src/server/api-role.ts";
import { sendJson } from "../src/server/http.ts";
import type { Route } from "../src/server/routes.ts";
import { startAdminServer } from "../src/server/server.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";
import { testSecrets, testServices } from "./helpers/jobs.ts";

const db = await createTestDb();
// Who runs a GraphQL request, in this test database only.
await db.query(`create function gk_public.test_whoami() returns text language sql stable as 'select current_user::text'`);
await db.query(`grant execute on function gk_public.test_whoami() to gk_viewer, gk_admin`);

// Reports who the route's connection is, as every route's ctx.db would.
const whoRoute: Route = {
  prefix: "/x-who/",
  async handle(_req, res, ctx) {
    const { rows } = await ctx.db.query(
      "select current_user::text as role, (select rolsuper from pg_roles where rolname = current_user) as superuser",
    );
    sendJson(res, 200, rows[0]);
  },
};

const api = await httpGraphql(db, { routes: [whoRoute] });

// A login role of the API's own, as an operator would make it for API_DATABASE_URL; its
// connections are told apart from the other server's in pg_stat_activity by their name.
const OWN_APPLICATION_NAME = "groundskeeper api (own login)";
const login = `gk_api_t_${crypto.randomBytes(5).toString("hex")}`;
const password = crypto.randomBytes(12).toString("hex");
await db.query(`create role ${login} login noinherit password '${password}'`);
await db.query(`grant gk_api, gk_admin, gk_viewer to ${login}`);
const loginUrl = (() => {
  const u = new URL(db.url);
  u.username = login;
  u.password = password;
  u.searchParams.set("application_name", OWN_APPLICATION_NAME);
  return u.toString();
})();
const own = await httpGraphql(db, { routes: [whoRoute], apiDatabaseUrl: loginUrl });
afterAll(async () => {
  await own.server.close();
  await db.query(`drop role if exists ${login}`);
});

async function asPool<T>(pool: pg.Pool, sql: string): Promise<{ rows?: T[]; code?: string }> {
  try {
    return { rows: (await pool.query(sql)).rows as T[] };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? (e as Error).message };
  }
}

for (const [mode, server] of [
  ["logging in with DATABASE_URL", api],
  ["logging in as its own role (API_DATABASE_URL)", own],
] as const) {
  describe(`the admin server ${mode}`, () => {
    it("runs every pool as gk_api, not a superuser, even after RESET ROLE", async () => {
      expect(server.server.pools).toHaveLength(3);
      for (const pool of server.server.pools) {
        const c = await pool.connect();
        try {
          const who = "select current_user::text as role, (select rolsuper from pg_roles where rolname = current_user) as superuser";
          expect((await c.query(who)).rows[0]).toEqual({ role: "gk_api", superuser: false });
          await c.query("reset role");
          expect((await c.query(who)).rows[0]).toEqual({ role: "gk_api", superuser: false });
        } finally {
          c.release();
        }
      }
    });

    it("serves routes as gk_api and GraphQL as the token's role", async () => {
      expect(await (await fetch(`${server.url}/x-who/`)).json()).toEqual({ role: "gk_api", superuser: false });
      expect((await server.exec("viewer", "{ testWhoami }")).data).toEqual({ testWhoami: "gk_viewer" });
      expect((await server.exec("admin", "{ testWhoami }")).data).toEqual({ testWhoami: "gk_admin" });
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
    });

    it("cannot read private tables, call private recorders or run programs through its connections", async () => {
      const pool = server.server.pool;
      expect(await asPool(pool, "select token_sha256 from gk_private.api_tokens")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select * from gk_private.master_key")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select sealed_private_key from gk_private.tuf_online_keys")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select sealed_key from gk_private.controller_keys")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select pem from gk_private.local_ca_certificates")).toEqual({ code: "42501" });
      expect(await asPool(pool, "update gk_private.local_ca_authorities set private_key_sealed = 'v1:x'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select * from gk_public.audit_events")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select count(*) from graphile_worker.jobs")).toEqual({ code: "42501" });
      // A SECURITY DEFINER recorder of gk_private (it would run as the owner).
      expect(await asPool(pool, "select gk_private.api_token_create('x', 'gk_admin', '\\x00')")).toEqual({ code: "42501" });
      expect(await asPool(pool, "select gk_private.enqueue('system__noop', '{}')")).toEqual({ code: "42501" });
      expect(await asPool(pool, "copy (select 1) to program 'true'")).toEqual({ code: "42501" });
      expect(await asPool(pool, "delete from gk_public.teams")).toEqual({ code: "42501" });
      expect((await db.query("select count(*)::int as n from gk_private.api_tokens where name = 'x'")).rows[0].n).toBe(0);
    });
  });
}

describe("the built-in CA behind /ca on a gk_api pool (as src/cli/parts.ts gives the server)", () => {
  it("makes the authority, and regenerates and serves a CRL that lists a revocation", async () => {
    const apiPool = createPool(apiConnectionString(db.url), 2);
    const apiCa = new LocalCa(apiPool, testSecrets, { name: "api", crlDebounceMs: 0 });
    const srv = await startAdminServer({
      databaseUrl: db.url,
      host: "127.0.0.1",
      port: 0,
      services: testServices({ ca: apiCa }),
      ...areaServerParts(),
    });
    try {
      const caPem = await (await fetch(`${srv.url}/ca/ca.pem`)).text(); // the server's CA made the authority
      expect(caPem).toContain("BEGIN CERTIFICATE");
      // The worker's side (the owner) issues and revokes; the server's side regenerates the CRL.
      const ownerCa = new LocalCa(db.pool, testSecrets, { name: "api" });
      const issued = await ownerCa.issue({ commonName: "x", profile: "robot", notAfter: new Date(Date.now() + 86_400_000) });
      await ownerCa.revoke(issued.serial!, "keyCompromise");
      const res = await fetch(`${srv.url}/ca/crl.pem`);
      expect(res.status).toBe(200);
      const crl = new x509.X509Crl(await res.text());
      expect(crl.entries.map((e) => e.serialNumber.replace(/^0+/, ""))).toEqual([issued.serial!.replace(/^0+/, "")]);
    } finally {
      await srv.close();
      await apiPool.end();
    }
  });
});

describe("a login role of the API's own", () => {
  it("shows in pg_stat_activity as that role and cannot switch to the owner", async () => {
    await fetch(`${own.url}/metrics`);
    const { rows } = await db.query<{ usename: string }>(
      "select distinct usename::text from pg_stat_activity where datname = current_database() and application_name = $1",
      [OWN_APPLICATION_NAME],
    );
    expect(rows.map((r) => r.usename)).toEqual([login]);
    expect(await asPool(own.server.pool, "set role postgres")).toEqual({ code: "42501" });
  });

  it("is refused when it is a superuser, with one line", async () => {
    await expect(httpGraphql(db, { apiDatabaseUrl: db.url })).rejects.toThrow(/API_DATABASE_URL logs in as postgres, a superuser/);
  });
});
