// Retention kind 'tuf_metadata': superseded versions older than the cutoff go (rows and
// files); current versions, whatever the published timestamp leads to, pending uploads and
// every root stay, and the client keeps refreshing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { jobs } from "../helpers/jobs.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import { signDirty } from "../../src/tuf/publish.ts";
import { rotateRoot } from "../../src/tuf/rotate.ts";
import { generateKeyFiles } from "../../src/tuf/keys.ts";
import {
  addTargets,
  box,
  Client,
  fakeTarget,
  publishNow,
  setupRepository,
  tmpDir,
  type TufFixture,
  verifyEveryRepository,
} from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 2, keys: 1, threshold: 1 });
  await rotateRoot(fromPool(db.pool), {
    team: fx.team,
    oldKeyFiles: fx.keyFiles,
    newKeyFiles: generateKeyFiles(tmpDir("k"), fx.team, 1).map((k) => k.file),
  });
  for (let i = 0; i < 5; i++) {
    await addTargets(db, fx.teamId, [fakeTarget(i)]);
    await publishNow(db, fx.blobs);
  }
  await db.query("delete from graphile_worker._private_jobs");
});
afterAll(() => fx?.close());

const versions = async () =>
  (
    await db.query(
      "select role, array_agg(version order by version) as v from gk_public.tuf_metadata where team_id = $1 group by role order by role",
      [fx.teamId],
    )
  ).rows;

describe("retention of TUF metadata", () => {
  it("registers the tuf_metadata policy with a 30-day default", async () => {
    const { rows } = await db.query("select retention from gk_public.retention_policies where kind = 'tuf_metadata'");
    expect(rows).toEqual([{ retention: { days: 30 } }]);
  });

  it("keeps everything younger than the cutoff", async () => {
    const before = await versions();
    const { rows } = await db.query("select gk_private.retention_prune__tuf_metadata(now() - interval '30 days', 10000) as n");
    expect(Number(rows[0].n)).toBe(0);
    expect(await versions()).toEqual(before);
  });

  it("prunes superseded versions but never current, published-reachable, pending or root ones", async () => {
    // An unuploaded publish (crash before upload): its documents and what the *published*
    // timestamp leads to must both survive.
    await addTargets(db, fx.teamId, [fakeTarget(100)]);
    await signDirty(fromPool(db.pool), box, fx.teamId);
    await db.query("delete from graphile_worker._private_jobs");
    const published = JSON.parse(Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, "timestamp.json")))!).toString());
    const publishedSnapshot = published.signed.meta["snapshot.json"].version;
    const snapDoc = JSON.parse(
      (
        await db.query("select document from gk_public.tuf_metadata where team_id = $1 and role = 'snapshot' and version = $2", [
          fx.teamId,
          publishedSnapshot,
        ])
      ).rows[0].document,
    );

    // Bounded: at most max_rows versions per call; the sweep comes back for the rest.
    const one = await db.query("select gk_private.retention_prune__tuf_metadata(now() + interval '1 minute', 1) as n");
    expect(Number(one.rows[0].n)).toBe(1);
    const { rows } = await db.query("select gk_private.retention_prune__tuf_metadata(now() + interval '1 minute', 10000) as n");
    expect(Number(rows[0].n)).toBeGreaterThan(0);
    const after = Object.fromEntries((await versions()).map((r) => [r.role, r.v as number[]]));
    expect(after.root).toEqual([1, 2]);
    expect(after.snapshot).toEqual([publishedSnapshot, publishedSnapshot + 1]);
    expect(after.timestamp[0]).toBe(published.signed.version);
    for (const [file, m] of Object.entries<any>(snapDoc.signed.meta)) {
      expect(after[file.replace(/\.json$/, "")][0]).toBe(m.version);
    }
    // The pruned files are deleted from the blob store by tuf__delete_blobs jobs.
    const del = await jobs(db, "tuf__delete_blobs");
    expect(del.length).toBeGreaterThan(0);
    const files: string[] = del.flatMap((j) => j.payload.files);
    expect(files).toContain(`1.snapshot.json`);
    expect(await fx.blobs.get(metadataKey(fx.teamId, "1.snapshot.json"))).not.toBeNull();
    // The resign sweep also reschedules the publish of the pending (crashed) upload.
    await db.query("select * from gk_private.tuf_resign_sweep()");
    await publishNow(db, fx.blobs);
    expect(await fx.blobs.get(metadataKey(fx.teamId, "1.snapshot.json"))).toBeNull();
    expect(await fx.blobs.get(metadataKey(fx.teamId, "1.root.json"))).not.toBeNull();

    // A client that trusts root v1 still walks the chain and sees the latest state.
    const client = await Client.create(fx);
    const u = await client.refresh();
    expect((await u.getTargetInfo(fakeTarget(100).path))?.length).toBe(fakeTarget(100).length);
    expect((await u.getTargetInfo(fakeTarget(0).path))?.length).toBe(fakeTarget(0).length);
  });
});
