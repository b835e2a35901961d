// The tuf__resign task as the crontab runs it: one activation with its counts, the expiring
// roles re-signed through the publish job, the client seeing fresh expiries.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { Client, publishNow, setupRepository, type TufFixture, verifyEveryRepository } from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 4 });
  await db.query("delete from graphile_worker._private_jobs");
});
afterAll(() => fx?.close());

describe("tuf__resign", () => {
  it("records an activation, and each expiring role gets a new version on its own", async () => {
    // Snapshot and one bin near expiry; timestamp, targets and the other bins are not.
    await db.query(
      "update gk_public.tuf_roles set expires = now() + interval '10 minutes' where team_id = $1 and role in ('snapshot', 'bins-2')",
      [fx.teamId],
    );
    await db.query(
      "select graphile_worker.add_job('tuf__resign', json_build_object('_cron', json_build_object('ts', now(), 'backfilled', false)))",
    );
    await runJobs(db, testServices({ blobs: fx.blobs }));
    const { rows } = await db.query("select status, counts from gk_public.activations where task = 'tuf__resign'");
    expect(rows).toEqual([{ status: "succeeded", counts: { roles_marked: 2, teams_scheduled: 1, pending_uploads: 0 } }]);
    await publishNow(db, fx.blobs);
    const versions = Object.fromEntries(
      (await db.query("select role, version from gk_public.tuf_roles where team_id = $1", [fx.teamId])).rows.map((r) => [
        r.role,
        r.version,
      ]),
    );
    expect(versions).toMatchObject({ "bins-0": 1, "bins-1": 1, "bins-2": 2, "bins-3": 1, targets: 1, snapshot: 2, timestamp: 2 });
    const client = await Client.create(fx);
    await client.refresh();
    expect(new Date(client.trusted("snapshot").signed.expires).getTime()).toBeGreaterThan(Date.now() + 6 * 86_400_000);

    // Nothing due: the next activation marks nothing.
    await db.query("select graphile_worker.add_job('tuf__resign', '{}'::json)");
    await runJobs(db, testServices({ blobs: fx.blobs }));
    const last = (await db.query("select counts from gk_public.activations where task = 'tuf__resign' order by id desc limit 1")).rows[0];
    expect(last.counts).toEqual({ roles_marked: 0, teams_scheduled: 0, pending_uploads: 0 });
  });
});
