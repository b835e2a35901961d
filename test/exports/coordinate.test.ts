// The coordinator's rounds during a launch (src/exports/coordinate.ts): which statements each
// round of 250 sends. No node is called (verify is off, the sagas' jobs are not run), so the
// node is a row with a fresh heartbeat and the services are never used.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertExportNode, insertExports, insertImages, insertTeam } from "../helpers/fixtures/index.ts";
import { clearJobs } from "../helpers/jobs.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { coordinateOnce } from "./helpers/coordinate.ts";

const db = await createTestDb();
let peers: Peers;
let team: string;

beforeAll(async () => {
  peers = await setupPeers(db, "coordinate");
  team = (await insertTeam(db, { name: "launch" })).id;
  await insertExportNode(db);
});

afterAll(async () => {
  await peers?.close();
});

const calls = (queries: string[], fn: string) => queries.filter((q) => q.includes(`gk_private.${fn}(`)).length;

describe("the coordinator's rounds", () => {
  it("during a launch settle every round but mark, bypass and the changeset only in the first, when settling started every saga", async () => {
    await insertImages(db, { team, count: 600 });
    const queries: string[] = [];
    const s = await coordinateOnce(db, peers.services, { verify_batch: 0 }, queries);
    expect({ settled: s.settled, created: s.create_invoked_ok, more: s.more }).toEqual({ settled: 600, created: 600, more: false });
    expect(calls(queries, "exports_settle_pending")).toBe(3); // 250, 250, 100
    for (const fn of ["exports_mark_for_deletion", "exports_bypass", "exports_changeset"])
      expect([fn, calls(queries, fn)]).toEqual([fn, 1]);
    const { rows } = await db.query("select state, count(*)::int as n from gk_public.exports group by state");
    expect(rows).toEqual([{ state: "assigning", n: 600 }]);
    await clearJobs(db);
  });

  it("a later round whose settling marked a record runs the changeset, so the record's delete saga starts in the same activation", async () => {
    // A live record whose image is deleted after 300 new images: its pending entry is settled in
    // the second round (entries go in id order).
    const [gone] = await insertImages(db, { team, count: 1 });
    const node = await insertExportNode(db);
    await db.query("delete from gk_private.export_pending");
    const [live] = await insertExports(db, { images: [gone!], state: "live", node });
    await insertImages(db, { team, count: 300 });
    await db.query("delete from gk_public.images where id = $1", [gone!.id]);
    const queries: string[] = [];
    const s = await coordinateOnce(db, peers.services, { verify_batch: 0 }, queries);
    expect({ settled: s.settled, marked: s.marked_for_deletion, deleted: s.delete_ids }).toEqual({
      settled: 301,
      marked: 1,
      deleted: [live!.id],
    });
    expect(calls(queries, "exports_changeset")).toBe(2); // the first round's, and the second's for the marked record
    await clearJobs(db);
  });
});
