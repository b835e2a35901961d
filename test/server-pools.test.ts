// Pool starvation: 30 slow viewer queries (a slow SQL function in this test database only) must
// not make health checks fail or other clients wait. The token's concurrency limit turns the
// excess away at once (429 + Retry-After); token lookup and health use their own pool.
import { describe, expect, it } from "vitest";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";

const db = await createTestDb();
await db.query(`create function gk_public.test_sleep(seconds float8) returns int language sql stable as 'select 1 from pg_sleep(seconds)'`);
await db.query(`grant execute on function gk_public.test_sleep(float8) to gk_viewer`);
const api = await httpGraphql(db);

const sleeping = async () =>
  (
    await db.query(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and query like '%test_sleep%' and state = 'active' and pid <> pg_backend_pid()`,
    )
  ).rows[0].n as number;

describe("30 slow viewer queries", () => {
  it("leave health, readiness and other tokens answering; the excess gets 429 with Retry-After", async () => {
    let settled = 0;
    const slow = Array.from({ length: 30 }, () =>
      fetch(`${api.url}/graphql`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${api.tokens.viewer}` },
        body: JSON.stringify({ query: "{ testSleep(seconds: 4) }" }),
      }).then(async (res) => {
        settled++;
        return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
      }),
    );
    while ((await sleeping()) < 4) await new Promise((r) => setTimeout(r, 50));

    // While the admitted slow queries still run:
    const live = await fetch(`${api.url}/livez`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${api.url}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: "ready" }]);
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    const other = await api.exec("admin", `{ allTeams { totalCount } }`);
    expect(other).toEqual({ data: { allTeams: { totalCount: 0 } } });
    const admitted = await sleeping();
    expect(admitted).toBe(4);
    expect(settled).toBeLessThan(30); // the admitted ones had not finished while the others answered

    const results = await Promise.all(slow);
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(4);
    for (const r of ok) expect(r.body).toEqual({ data: { testSleep: 1 } });
    expect(refused).toHaveLength(26);
    for (const r of refused) {
      expect(r.retryAfter).toBe("1");
      expect(r.body.errors[0].message).toMatch(/too many concurrent requests for this token \(at most 4\)/);
    }
    // The limit is released when requests finish.
    expect((await api.exec("viewer", "{ testSleep(seconds: 0) }")).data).toEqual({ testSleep: 1 });
  });
});
