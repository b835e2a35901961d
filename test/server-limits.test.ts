// Query cost bounds of the admin API: the nested-connection query that used to grow the heap to
// 4 GB (two TUF repositories of 256 bins, a viewer token) is refused before anything runs;
// default and maximum page sizes, depth and alias limits; ordinary queries still work.
import { describe, expect, it } from "vitest";
import { fromPool } from "../src/tuf/db.ts";
import { initRepository } from "../src/tuf/init.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql, inProcessGraphql } from "./helpers/graphql.ts";
import { box, tmpDir } from "./tuf/helpers/tuf.ts";

const db = await createTestDb();
for (const team of ["limits-a", "limits-b"]) {
  await db.query("insert into gk_public.teams (name) values ($1)", [team]);
  await initRepository(fromPool(db.pool), box, { team, keysDir: tmpDir("limits"), keys: 1, threshold: 1, bins: 256 });
}
const api = await httpGraphql(db);
const local = await inProcessGraphql(db);
const ROLES = 2 * (256 + 3);

const ATTACK = `{ allTufRoles { nodes { tufRepositoryByTeamId { tufRolesByTeamId { nodes { tufRepositoryByTeamId { tufRolesByTeamId { nodes { role } } } } } } } } }`;

describe("query cost", () => {
  it("refuses the nested-connection attack with a clear error, over HTTP and in-process", async () => {
    // Over HTTP the shape rules see it first (validation, cached per document) ...
    const res = await api.post(ATTACK, { as: "viewer" });
    expect(res.status).toBe(200);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors).toHaveLength(1);
    expect(res.body.errors?.[0]).toMatchObject({ extensions: { code: "QUERY_TOO_DEEP" } });
    expect(res.body.errors?.[0].message).toMatch(/exceeds operation depth limits: field TufRoleConnection.nodes nested 3 times/);
    // ... and in-process (no HTTP validation rules) the cost budget refuses it before planning.
    const inproc = await local.exec("viewer", ATTACK);
    expect(inproc.data).toBeUndefined();
    expect(inproc.errors?.[0]).toMatchObject({ extensions: { code: "QUERY_TOO_EXPENSIVE", maxCost: 50_000 } });
    expect(inproc.errors?.[0].message).toMatch(/too expensive: estimated cost \d+ is over the limit of 50000/);
    // The server is still fine afterwards.
    expect((await api.exec("viewer", `{ allTeams { totalCount } }`)).data.allTeams.totalCount).toBe(2);
  });

  it("prices page sizes from variables too", async () => {
    const q = `query($n: Int) { allTufRoles(first: $n) { nodes { tufRepositoryByTeamId { tufRolesByTeamId(first: $n) { nodes { role } } } } } }`;
    const big = await api.exec("viewer", q, { n: 1000 });
    expect(big.errors?.[0]).toMatchObject({ extensions: { code: "QUERY_TOO_EXPENSIVE", cost: 2_003_001 } });
    const small = await api.exec("viewer", q, { n: 3 });
    expect(small.errors).toBeUndefined();
    expect(small.data.allTufRoles.nodes).toHaveLength(3);
    expect(small.data.allTufRoles.nodes[0].tufRepositoryByTeamId.tufRolesByTeamId.nodes).toHaveLength(3);
  });
});

describe("page size", () => {
  it("applies the default page size when neither first nor last is given, and says there is more", async () => {
    const res = await api.exec("viewer", `{ allTufRoles { totalCount pageInfo { hasNextPage } nodes { role } } }`);
    expect(res.errors).toBeUndefined();
    expect(res.data.allTufRoles.totalCount).toBe(ROLES);
    expect(res.data.allTufRoles.nodes).toHaveLength(100);
    expect(res.data.allTufRoles.pageInfo.hasNextPage).toBe(true);
  });

  it("honours first and last up to the maximum, and a null variable gets the default", async () => {
    expect((await api.exec("viewer", `{ allTufRoles(first: 518) { nodes { role } } }`)).data.allTufRoles.nodes).toHaveLength(ROLES);
    expect((await api.exec("viewer", `{ allTufRoles(last: 7) { nodes { role } } }`)).data.allTufRoles.nodes).toHaveLength(7);
    const viaNull = await api.exec("viewer", `query($n: Int) { allTufRoles(first: $n) { nodes { role } } }`, { n: null });
    expect(viaNull.data.allTufRoles.nodes).toHaveLength(100);
  });

  it("refuses a page over the maximum", async () => {
    const res = await api.exec("viewer", `{ allTufRoles(first: 1001) { nodes { role } } }`);
    expect(res.errors?.[0]).toMatchObject({ extensions: { code: "PAGE_TOO_LARGE", maxPageSize: 1000 } });
    expect(res.errors?.[0].message).toMatch(/allTufRoles\(first: 1001\) is over the maximum page size of 1000/);
  });
});

describe("response size and memory", () => {
  it("replaces a response larger than the cap by a clear error", async () => {
    const small = await httpGraphql(db, { maxResponseBytes: 2000 });
    const big = await small.post(`{ allTufRoles(first: 200) { nodes { role expires } } }`, { as: "viewer" });
    expect(big.status).toBe(200);
    expect(big.body.data).toBeUndefined();
    expect(big.body.errors?.[0]).toMatchObject({ extensions: { code: "RESPONSE_TOO_LARGE", maxResponseBytes: 2000 } });
    const ok = await small.post(`{ allTufRoles(first: 2) { nodes { role } } }`, { as: "viewer" });
    expect(ok.body.data.allTufRoles.nodes).toHaveLength(2);
  });

  it("turns requests away while the heap is fuller than allowed, health still answers", async () => {
    const full = await httpGraphql(db, { concurrency: { maxHeapFraction: 0.000001 } });
    const res = await fetch(`${full.url}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${full.tokens.viewer}` },
      body: JSON.stringify({ query: "{ allTeams { totalCount } }" }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as any).errors[0].message).toMatch(/low on memory/);
    expect((await fetch(`${full.url}/livez`)).status).toBe(200);
  });
});

describe("query shape", () => {
  it("refuses too many aliases", async () => {
    const aliases = Array.from({ length: 31 }, (_, i) => `a${i}: allTeams(first: 1) { totalCount }`).join(" ");
    const res = await api.post(`{ ${aliases} }`, { as: "viewer" });
    expect(res.body.errors?.[0]).toMatchObject({
      message: "too many aliases: at most 30 in one operation",
      extensions: { code: "TOO_MANY_ALIASES" },
    });
    expect(res.body.data).toBeUndefined();
  });

  it("refuses deeply nested lists", async () => {
    const deep = `{ allTeams(first: 1) { nodes { tufRepositoryByTeamId { tufRolesByTeamId(first: 1) { nodes { tufRepositoryByTeamId {
      tufRolesByTeamId(first: 1) { nodes { tufRepositoryByTeamId { tufRolesByTeamId(first: 1) { nodes { tufRepositoryByTeamId {
      tufRolesByTeamId(first: 1) { nodes { role } } } } } } } } } } } } } } }`;
    const res = await api.post(deep, { as: "viewer" });
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors?.[0]).toMatchObject({ extensions: { code: "QUERY_TOO_DEEP" } });
    expect(res.body.errors?.[0].message).toMatch(/exceeds operation depth limits: .*operation list depth 5 exceeds maximum of 4/);
  });

  it("still answers ordinary queries (the README's examples) and GraphiQL's introspection", async () => {
    const teams = await api.exec("viewer", `{ allTeams { nodes { name createdAt robotsByTeamId { totalCount nodes { name } } } } }`);
    expect(teams.errors).toBeUndefined();
    expect(teams.data.allTeams.nodes).toHaveLength(2);
    const activations = await api.exec(
      "viewer",
      `{ allActivations(orderBy: STARTED_AT_DESC, first: 20) { nodes { task status startedAt finishedAt counts error activationErrorsByActivationId { nodes { item error } } } } }`,
    );
    expect(activations.errors).toBeUndefined();
    const { getIntrospectionQuery } = await import("postgraphile/graphql");
    const intro = await api.post(getIntrospectionQuery(), { as: "viewer" });
    expect(intro.body.errors).toBeUndefined();
    expect(intro.body.data.__schema.types.length).toBeGreaterThan(50);
  });
});
