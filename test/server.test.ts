import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { canonicalSchemaSql, SCHEMA_SQL_FILE, schemaSql } from "../src/db/schema-dump.ts";
import { SCHEMA_FILE, schemaSdl } from "../src/server/schema-sdl.ts";
import { revokeToken } from "../src/server/tokens.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql, inProcessGraphql } from "./helpers/graphql.ts";

const db = await createTestDb();
const api = await httpGraphql(db);
const local = await inProcessGraphql(db);

const CREATE_TEAM = `mutation($name: String!) { createTeam(input: { team: { name: $name } }) { team { rowId name } } }`;
const ALL_TEAMS = `{ allTeams(orderBy: NAME_ASC) { nodes { name robotsByTeamId { totalCount nodes { name } } } } }`;

describe("admin API authentication", () => {
  it("answers 401 with a JSON error when the token is missing, unknown or revoked", async () => {
    const none = await api.post(ALL_TEAMS, { token: null });
    expect(none.status).toBe(401);
    expect(none.body.errors?.[0].message).toMatch(/missing bearer token/);

    const bad = await api.post(ALL_TEAMS, { token: "gk_not-a-real-token" });
    expect(bad.status).toBe(401);
    expect(bad.body.errors?.[0].message).toMatch(/invalid or revoked token/);

    const res = await fetch(`${api.url}/graphql`, {
      method: "POST",
      headers: { Authorization: "Basic abc", "Content-Type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);

    const { createToken } = await import("../src/server/tokens.ts");
    const temp = await createToken(db.pool, "short-lived", "admin");
    expect((await api.post(ALL_TEAMS, { token: temp.token })).status).toBe(200);
    expect(await revokeToken(db.pool, "short-lived")).toBe(1);
    expect((await api.post(ALL_TEAMS, { token: temp.token })).status).toBe(401);
  });

  it("keeps only a sha256 of each token and records when it was last used", async () => {
    const { rows } = await db.query(`select token_sha256, last_used_at from gk_private.api_tokens where name = 'test viewer'`);
    expect(rows[0].token_sha256).toHaveLength(32);
    expect(rows[0].token_sha256.toString("utf8")).not.toContain(api.tokens.viewer);
    await api.post(ALL_TEAMS, { as: "viewer" });
    const after = await db.query(`select last_used_at from gk_private.api_tokens where name = 'test viewer'`);
    expect(after.rows[0].last_used_at).toBeInstanceOf(Date);
  });

  it("serves GraphiQL (Ruru) without a token; the data needs one", async () => {
    const res = await fetch(`${api.url}/`, { headers: { Accept: "text/html" } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toMatch(/ruru/i);
    expect(html).not.toContain(api.tokens.admin);
  });
});

describe("teams and robots through GraphQL", () => {
  it("lets an admin create, update, query and delete teams and robots (cascade) over HTTP", async () => {
    const created = await api.exec("admin", CREATE_TEAM, { name: "acme" });
    expect(created.errors).toBeUndefined();
    const teamId = created.data.createTeam.team.rowId;

    const robot = await api.exec(
      "admin",
      `mutation($t: UUID!) { createRobot(input: { robot: { teamId: $t, name: "r2" } }) { robot { rowId teamId } } }`,
      { t: teamId },
    );
    expect(robot.errors).toBeUndefined();
    expect(robot.data.createRobot.robot.teamId).toBe(teamId);

    const renamed = await api.exec(
      "admin",
      `mutation($id: UUID!) { updateRobotByRowId(input: { rowId: $id, robotPatch: { name: "r2-d2" } }) { robot { name } } }`,
      { id: robot.data.createRobot.robot.rowId },
    );
    expect(renamed.data.updateRobotByRowId.robot.name).toBe("r2-d2");

    const listed = await api.exec("viewer", ALL_TEAMS);
    expect(listed.data.allTeams.nodes).toEqual([{ name: "acme", robotsByTeamId: { totalCount: 1, nodes: [{ name: "r2-d2" }] } }]);

    const deleted = await api.exec("admin", `mutation { deleteTeamByName(input: { name: "acme" }) { deletedTeamId } }`);
    expect(deleted.errors).toBeUndefined();
    expect((await db.query(`select count(*)::int as n from gk_public.robots`)).rows[0].n).toBe(0);
  });

  it("refuses a viewer's mutation (the grants decide) and changes nothing", async () => {
    const res = await api.post(CREATE_TEAM, { as: "viewer", variables: { name: "sneaky" } });
    expect(res.status).toBe(200);
    expect(res.body.errors?.[0].message).toMatch(/permission denied for table teams/);
    expect((await db.query(`select count(*)::int as n from gk_public.teams where name = 'sneaky'`)).rows[0].n).toBe(0);
  });

  it("rejects bad input with a clear error and changes nothing", async () => {
    const res = await api.exec("admin", CREATE_TEAM, { name: "Not Valid!" });
    expect(res.errors?.[0].message).toMatch(/violates check constraint/);
    const dup1 = await api.exec("admin", CREATE_TEAM, { name: "dup" });
    expect(dup1.errors).toBeUndefined();
    const dup2 = await api.exec("admin", CREATE_TEAM, { name: "dup" });
    expect(dup2.errors?.[0].message).toMatch(/duplicate key/);
    expect((await db.query(`select count(*)::int as n from gk_public.teams where name in ('dup', 'Not Valid!')`)).rows[0].n).toBe(1);
  });

  it("does not let a client set keys or timestamps; a robot moves to another team only by its teamId (test/rollouts/move.test.ts)", async () => {
    const sdl = fs.readFileSync(SCHEMA_FILE, "utf8");
    const block = (name: string) => sdl.match(new RegExp(`input ${name} \\{[^}]*\\}`))?.[0] ?? "";
    expect(block("TeamInput")).not.toMatch(/rowId|createdAt/);
    expect(block("RobotInput")).not.toMatch(/rowId|createdAt/);
    expect(block("RobotPatch")).not.toMatch(/rowId|createdAt/);
    expect(block("RobotPatch")).toMatch(/name/);
    expect(block("RobotPatch")).toMatch(/teamId/);
  });

  it("works in-process as a role too: viewer refused, admin allowed", async () => {
    const viewer = await local.exec("viewer", CREATE_TEAM, { name: "inproc" });
    expect(viewer.errors?.[0].message).toMatch(/permission denied/);
    const admin = await local.exec("admin", CREATE_TEAM, { name: "inproc" });
    expect(admin.errors).toBeUndefined();
    expect(admin.data.createTeam.team.name).toBe("inproc");
  });
});

describe("activations through GraphQL", () => {
  it("shows activations with their counts and per-item errors to a viewer, read-only", async () => {
    await db.query(`
      with a as (select gk_private.activation_start('certificates__expiry_sweep') as id)
      select gk_private.activation_error(a.id, 'cert 42', 'CA unavailable'), gk_private.activation_finish(a.id, '{"expired": 3}') from a`);
    const res = await api.exec(
      "viewer",
      `{ allActivations(condition: { task: "certificates__expiry_sweep" }) { nodes { task status counts activationErrorsByActivationId { nodes { item error } } } } }`,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data.allActivations.nodes).toEqual([
      {
        task: "certificates__expiry_sweep",
        status: "succeeded",
        counts: { expired: 3 },
        activationErrorsByActivationId: { nodes: [{ item: "cert 42", error: "CA unavailable" }] },
      },
    ]);
  });

  it("exposes nothing from gk_private and no mutation of history", async () => {
    const sdl = fs.readFileSync(SCHEMA_FILE, "utf8");
    expect(sdl).not.toMatch(/ApiToken|tokenSha256|StoredLogic/i);
    expect(sdl).not.toMatch(/createActivation|updateActivation|deleteActivation/);
  });
});

describe("schema.graphql", () => {
  it("is current (refresh it with: npm run schema:export)", async () => {
    const committed = fs.existsSync(SCHEMA_FILE) ? fs.readFileSync(SCHEMA_FILE, "utf8") : "";
    const current = await schemaSdl(db.url);
    expect(current === committed, "schema.graphql is stale: run `npm run schema:export` and commit schema.graphql").toBe(true);
  });
});

describe("schema.sql", () => {
  it("is current (refresh it with: npm run schema:export)", async () => {
    const committed = fs.existsSync(SCHEMA_SQL_FILE) ? fs.readFileSync(SCHEMA_SQL_FILE, "utf8") : "";
    // This database when its server is of the embedded major, else an embedded one.
    const current = await canonicalSchemaSql(db.url);
    expect(current === committed, "schema.sql is stale: run `npm run schema:export` and commit schema.sql").toBe(true);
  });

  it("carries no OIDs, owners or dates, and leaves out graphile_worker and run-time partitions", async () => {
    // A run-time partition exists in this database (the one of today is made by the retention sweep).
    await db.query("select gk_private.ensure_telemetry_partitions(current_date, 1)");
    const sql = await schemaSql(db.url);
    expect(sql).not.toMatch(/ecu_telemetry_p\d{8}|(table|view|function) graphile_worker\.|\b\d{4}-\d\d-\d\d\b/i);
    const { rows } = await db.query("select current_user as me");
    expect(sql).not.toContain(` to ${rows[0].me};`);
    expect(sql).toContain("create table gk_private.ecu_telemetry_default partition of gk_public.ecu_telemetry default;");
    expect(sql).toMatch(/grant insert \(csr_pem, [a-z_, ]+\) on gk_public\.certificates to gk_admin;/);
    expect(sql).toContain("CREATE TRIGGER _100_lifecycle BEFORE INSERT OR UPDATE OF status");
    expect(sql).toContain("CREATE OR REPLACE FUNCTION gk_private.enqueue(task text");
    expect(await schemaSql(db.url)).toBe(sql);
  });
});

describe("operations endpoints", () => {
  it("/livez says the process answers, /readyz (and /healthz, as before) that the database does", async () => {
    const live = await fetch(`${api.url}/livez`);
    expect([live.status, await live.json()]).toEqual([200, { status: "alive" }]);
    const ready = await fetch(`${api.url}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: "ready" }]);
    const res = await fetch(`${api.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("/metrics reports queue depth, failed jobs and activations from SQL at scrape time", async () => {
    await db.query(`select gk_private.enqueue_many('system__noop', array[jsonb_build_object('n', 1), jsonb_build_object('n', 2)])`);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": 3}', max_attempts := 1)`);
    await db.query(`update graphile_worker._private_jobs set attempts = 1, last_error = 'boom' where payload->>'n' = '3'`);
    const res = await fetch(`${api.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('gk_job_queue_depth{task="system__noop"} 2');
    expect(text).toContain('gk_jobs_failed{task="system__noop"} 1');
    expect(text).toMatch(/gk_activations\{task="certificates__expiry_sweep",status="succeeded"\} 1/);
    expect(text).toMatch(/gk_activation_last_success_timestamp_seconds\{task="certificates__expiry_sweep"\} \d+/);
    expect(text).toContain('gk_metrics_collector_up{collector="jobs"} 1');
    await db.query(`delete from graphile_worker._private_jobs`);
    // Each scrape starts from nothing: an emptied queue leaves no stale value behind, and every
    // known task reports 0 (so alerts resolve) while an unknown label set vanishes.
    // certificates__expiry_sweep is no reconciler of tasks/: the next registration (every migrate) drops it.
    await db.query(`select gk_private.reconcilers_register((select jsonb_agg(to_jsonb(r)) from gk_public.reconcilers r))`);
    const after = await (await fetch(`${api.url}/metrics`)).text();
    expect(after).toContain('gk_job_queue_depth{task="system__noop"} 0');
    expect(after).toContain('gk_jobs_failed{task="system__noop"} 0');
    expect(after).not.toContain('task="certificates__expiry_sweep"');
  });
});
