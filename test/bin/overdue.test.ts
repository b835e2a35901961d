// An outage nobody could record is still visible: bin items past their lease (no live task, no
// error written) are overdue in the bin view, its summary, `groundskeeper status` and the
// gk_bin_overdue metric. Once a worker records the failure they are failing, not overdue.
import { describe, expect, it } from "vitest";
import { binSection } from "../../src/bin/status.ts";
import { localCa, unreachableCa } from "../certificates/helpers/ca-fixtures.ts";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";

const db = await createTestDb({ settings: { "groundskeeper.bin_lease": "1 second" } });
const api = await httpGraphql(db);

async function summary(on: { query: TestDb["query"] } = db) {
  const { rows } = await on.query("select kind, length, failing, overdue from gk_public.bin_summary order by kind");
  return rows;
}

async function metric(kind: string): Promise<number> {
  const text = await (await fetch(`${api.url}/metrics`)).text();
  const m = new RegExp(`^gk_bin_overdue\\{kind="${kind}"\\} (\\d+)$`, "m").exec(text);
  if (!m) throw new Error(`no gk_bin_overdue for ${kind} in /metrics`);
  return Number(m[1]);
}

describe("overdue bin items", () => {
  it("past their lease with nothing recorded → overdue everywhere; recorded failures → failing instead", async () => {
    const ca = localCa(db, "overdue");
    const team = (await insertTeam(db, { name: "overdue" })).id;
    const robots = ids(await insertRobots(db, { team, count: 3 }));
    await db.query("select gk_public.request_certificate(r) from unnest($1::uuid[]) r", [robots]);
    await runJobs(db, testServices({ ca }));
    // Just enqueued: within their lease, running or about to (seen inside the deleting
    // transaction, whose now() stands still, so the check does not depend on the clock).
    const c = await db.pool.connect();
    try {
      await c.query("begin");
      await c.query("delete from gk_public.teams where id = $1", [team]);
      expect(await summary(c)).toEqual([
        { kind: "blob_prefix", length: 1, failing: 0, overdue: 0 },
        { kind: "certificate", length: 3, failing: 0, overdue: 0 },
      ]);
      await c.query("commit");
    } finally {
      c.release();
    }

    // No worker could get anywhere (cut off with the CA's store): nothing is recorded, the lease runs out.
    await expect.poll(async () => (await summary()).map((r) => r.overdue), { timeout: 10_000, interval: 200 }).toEqual([1, 3]);
    expect((await db.query("select count(*)::int as n from gk_public.bin where overdue and last_error is null")).rows[0].n).toBe(4);
    expect(await metric("certificate")).toBe(3);
    expect(await metric("blob_prefix")).toBe(1);
    const status = binSection.render(await binSection.collect(db.pool));
    expect(status).toMatch(/kind\s+pending\s+failing\s+overdue/);
    expect(status).toContain("4 overdue: past their lease with no live task");

    // A worker that reaches the database but not the CA records why: failing, no longer overdue.
    // (This worker has no blob store at all and cannot record anything for the purge: still overdue.)
    const down = unreachableCa("overdue");
    try {
      await runJobs(db, testServices({ ca: down.ca }));
    } finally {
      await down.close();
    }
    expect(await summary()).toEqual([
      { kind: "blob_prefix", length: 1, failing: 0, overdue: 1 },
      { kind: "certificate", length: 3, failing: 3, overdue: 0 },
    ]);
    expect(await metric("certificate")).toBe(0);
  });
});
