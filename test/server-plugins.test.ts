// Extension points of the admin server (extra routes, metric collectors) and the statement timeout.
import { describe, expect, it } from "vitest";
import { jobMetrics, type MetricCollector } from "../src/server/metrics.ts";
import { sendJson } from "../src/server/http.ts";
import type { Route } from "../src/server/routes.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";

const db = await createTestDb();
// A slow function in the exposed schema of this test database only, so a query can overrun.
await db.query(`create function gk_public.test_sleep(seconds float8) returns int language sql stable as 'select 1 from pg_sleep(seconds)'`);
await db.query(`grant execute on function gk_public.test_sleep(float8) to gk_viewer`);

const publicRoute: Route = {
  prefix: "/x-public/",
  async handle(_req, res, ctx) {
    const { rows } = await ctx.db.query("select count(*)::int as n from gk_public.teams");
    sendJson(res, 200, { path: ctx.path, teams: rows[0].n });
  },
};
const privateRoute: Route = { prefix: "/x-private/", auth: true, handle: async (_req, res) => sendJson(res, 200, { ok: true }) };
const failing: MetricCollector = {
  name: "always_fails",
  async collect({ gauge }) {
    gauge("gk_test_partial", "set before failing").set(7);
    throw new Error("collector exploded");
  },
};

const api = await httpGraphql(db, { routes: [publicRoute, privateRoute], collectors: [jobMetrics, failing], statementTimeout: "300ms" });

describe("pluggable routes", () => {
  it("routes by prefix, with the database in the context", async () => {
    const res = await fetch(`${api.url}/x-public/a/b.json?x=1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: "/x-public/a/b.json", teams: 0 });
  });

  it("enforces the bearer token on routes that ask for it", async () => {
    expect((await fetch(`${api.url}/x-private/thing`)).status).toBe(401);
    const ok = await fetch(`${api.url}/x-private/thing`, { headers: { Authorization: `Bearer ${api.tokens.viewer}` } });
    expect(ok.status).toBe(200);
  });

  it("answers 404 for unknown paths", async () => {
    expect((await fetch(`${api.url}/nope`)).status).toBe(404);
  });
});

describe("metric collectors", () => {
  it("a failing collector reports up=0 and a 500, without hiding the others", async () => {
    const res = await fetch(`${api.url}/metrics`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).toContain('gk_metrics_collector_up{collector="always_fails"} 0');
    expect(text).toContain('gk_metrics_collector_up{collector="jobs"} 1');
    expect(text).toContain("gk_test_partial 7");
  });
});

describe("statement timeout", () => {
  it("cancels an API query that runs longer than the configured limit", async () => {
    const fast = await api.exec("viewer", `{ testSleep(seconds: 0) }`);
    expect(fast.errors).toBeUndefined();
    const slow = await api.exec("viewer", `{ testSleep(seconds: 5) }`);
    expect(slow.errors?.[0].message).toMatch(/statement timeout/);
  });
});
