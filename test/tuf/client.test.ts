// A real TUF client (tuf-js Updater) over HTTP against what the publisher uploaded: every
// published state must be accepted, and targets must download with verified hashes.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { signDirty, uploadPending } from "../../src/tuf/publish.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import {
  addTargets,
  box,
  Client,
  fakeTarget,
  publishNow,
  setupRepository,
  storeTarget,
  type TufFixture,
  verifyEveryRepository,
} from "./helpers/tuf.ts";
import { jobs } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;
let client: Client;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 16 });
  client = await Client.create(fx);
});
afterAll(() => fx?.close());

const roleVersions = async () =>
  Object.fromEntries(
    (await db.query("select role, version from gk_public.tuf_roles where team_id = $1", [fx.teamId])).rows.map((r) => [r.role, r.version]),
  );

describe("tuf repository, checked by tuf-js", () => {
  it("bootstrap: the client accepts the fresh repository, with every bin listed in snapshot", async () => {
    const u = await client.refresh();
    expect(await u.getTargetInfo("nothing/here.bin")).toBeUndefined();
    const snapshot = client.trusted("snapshot");
    expect(Object.keys(snapshot.signed.meta)).toHaveLength(17); // targets + 16 bins
    expect(client.trusted("timestamp").signed.version).toBe(1);
    const status = (await db.query("select * from gk_public.tuf_repository_status where team_id = $1", [fx.teamId])).rows[0];
    expect(status).toMatchObject({ bins: 16, dirty_roles: "0", pending_uploads: "0", published_timestamp_version: 1 });
  });

  it("add: one target becomes downloadable, its hash verified; only its bin is re-signed", async () => {
    const before = await roleVersions();
    const t = await storeTarget(fx, "firmware/robot-1.2.3.bin", "firmware bytes 1.2.3", { hw: "rev-b" });
    expect(await addTargets(db, fx.teamId, [t])).toBe(1);
    expect(await jobs(db, "tuf__publish")).toHaveLength(1);
    await publishNow(db, fx.blobs);
    expect((await client.download("firmware/robot-1.2.3.bin")).toString()).toBe("firmware bytes 1.2.3");
    const after = await roleVersions();
    const changed = Object.keys(after)
      .filter((r) => after[r] !== before[r])
      .sort();
    const { rows } = await db.query("select 'bins-' || to_hex(gk_public.tuf_bin_of($1, 4)) as bin", [t.path]);
    expect(changed).toEqual([rows[0].bin, "snapshot", "timestamp"]);
  });

  it("consistent snapshots: a default client fetches <dir>/<hash>.<name>; other hashes are 404", async () => {
    const nested = await storeTarget(fx, "firmware/hashed/robot ü-2.0.bin", "hash-prefixed download");
    const top = await storeTarget(fx, "top-level.txt", "no directory");
    const sha512 = crypto.createHash("sha512").update("both hashes").digest("hex");
    const both = await storeTarget(fx, "firmware/two-hashes.bin", "both hashes");
    await addTargets(db, fx.teamId, [nested, top, { ...both, hashes: { ...both.hashes, sha512 } }]);
    await publishNow(db, fx.blobs);
    const prefixed = await Client.create(fx);
    prefixed.prefixTargetsWithHash = true; // tuf-js's (and python-tuf's) default
    expect((await prefixed.download(nested.path)).toString()).toBe("hash-prefixed download");
    expect((await prefixed.download(top.path)).toString()).toBe("no directory");
    expect((await prefixed.download(both.path)).toString()).toBe("both hashes");
    // Prefixing off still works (the plain path).
    expect((await client.download(nested.path)).toString()).toBe("hash-prefixed download");
    const url = (p: string) => `${fx.baseUrl}/tuf/${fx.team}/targets/${p}`;
    expect((await fetch(url(`firmware/${sha512}.two-hashes.bin`))).status).toBe(200);
    expect((await fetch(url(`firmware/${both.hashes.sha256}.two-hashes.bin`))).status).toBe(200);
    // A hash the target does not list, or another target's hash, is not that file.
    expect((await fetch(url(`firmware/${"0".repeat(64)}.two-hashes.bin`))).status).toBe(404);
    expect((await fetch(url(`${nested.hashes.sha256}.top-level.txt`))).status).toBe(404);
    expect((await fetch(url(`firmware/${top.hashes.sha256}.two-hashes.bin`))).status).toBe(404);
  });

  it("a target whose content does not match its hashes is refused at download", async () => {
    const t = await storeTarget(fx, "firmware/bad.bin", "the real content");
    await addTargets(db, fx.teamId, [{ ...t, hashes: { sha256: "00".repeat(32) } }]);
    await publishNow(db, fx.blobs);
    await expect(client.download("firmware/bad.bin")).rejects.toThrow(/hash/i);
  });

  it("remove: the client no longer finds the target", async () => {
    await db.query("select gk_public.tuf_remove_targets($1, array['firmware/robot-1.2.3.bin', 'firmware/bad.bin'])", [fx.teamId]);
    await publishNow(db, fx.blobs);
    const u = await client.refresh();
    expect(await u.getTargetInfo("firmware/robot-1.2.3.bin")).toBeUndefined();
  });

  it("batch: 2,000 targets in one statement are one publish, and all are visible", async () => {
    const batch = Array.from({ length: 2000 }, (_, i) => fakeTarget(i));
    // A plain table write, as a platform web server would do it.
    await db.query(
      `insert into gk_public.tuf_targets (team_id, path, length, hashes)
       select $1, x.path, x.length, x.hashes from jsonb_to_recordset($2::jsonb) as x (path text, length bigint, hashes jsonb)`,
      [fx.teamId, JSON.stringify(batch)],
    );
    expect(await jobs(db, "tuf__publish")).toHaveLength(1);
    await publishNow(db, fx.blobs);
    const u = await client.refresh();
    for (const i of [0, 7, 999, 1999]) {
      const info = await u.getTargetInfo(batch[i].path);
      expect(info?.hashes.sha256).toBe(batch[i].hashes.sha256);
      expect(info?.length).toBe(batch[i].length);
    }
    // A batch update and a batch delete go through the same statement triggers.
    await db.query("update gk_public.tuf_targets set length = length + 1 where team_id = $1 and path like 'pkg/1%'", [fx.teamId]);
    await db.query("delete from gk_public.tuf_targets where team_id = $1 and path like 'pkg/2%'", [fx.teamId]);
    await publishNow(db, fx.blobs);
    const u2 = await client.refresh();
    expect((await u2.getTargetInfo(batch[1].path))?.length).toBe(batch[1].length + 1);
    expect(await u2.getTargetInfo(batch[2].path)).toBeUndefined();
    expect((await u2.getTargetInfo(batch[3].path))?.length).toBe(batch[3].length);
  });

  it("resign: a timestamp near expiry is renewed on its own even when no bin is (RSTUF bug c)", async () => {
    // Timestamp lives 1 day, bins 30 days: simulate 20 hours passing for the timestamp only.
    await db.query("update gk_public.tuf_roles set expires = now() + interval '4 hours' where team_id = $1 and role = 'timestamp'", [
      fx.teamId,
    ]);
    const before = await roleVersions();
    await db.query("select * from gk_private.tuf_resign_sweep()");
    await publishNow(db, fx.blobs);
    const after = await roleVersions();
    const changed = Object.keys(after).filter((r) => after[r] !== before[r]);
    expect(changed).toEqual(["timestamp"]);
    await client.refresh();
    expect(client.trusted("timestamp").signed.version).toBe(after.timestamp);
    expect(new Date(client.trusted("timestamp").signed.expires).getTime()).toBeGreaterThan(Date.now() + 20 * 3600_000);
  });

  it("resign: a bin near expiry gets a new version, and so do snapshot and timestamp", async () => {
    await db.query(
      "update gk_public.tuf_roles set expires = now() + interval '1 hour' where team_id = $1 and role in ('bins-3', 'targets')",
      [fx.teamId],
    );
    const before = await roleVersions();
    const { rows } = await db.query("select * from gk_private.tuf_resign_sweep()");
    expect(rows).toEqual([{ team_id: fx.teamId, roles_marked: 2, pending_uploads: 0 }]);
    await publishNow(db, fx.blobs);
    const after = await roleVersions();
    expect(
      Object.keys(after)
        .filter((r) => after[r] !== before[r])
        .sort(),
    ).toEqual(["bins-3", "snapshot", "targets", "timestamp"]);
    await client.refresh();
    expect(client.trusted("snapshot").signed.meta["bins-3.json"].version).toBe(after["bins-3"]);
  });

  it("crash between commit and upload: the client keeps seeing the old state, then the stored documents are uploaded", async () => {
    const t = await storeTarget(fx, "firmware/after-crash.bin", "after the crash");
    await addTargets(db, fx.teamId, [t]);
    // Sign and commit, then "crash": no upload.
    await signDirty(fromPool(db.pool), box, fx.teamId);
    const pending = (
      await db.query("select role, version, document from gk_public.tuf_metadata where team_id = $1 and uploaded_at is null", [fx.teamId])
    ).rows;
    expect(pending.map((r) => r.role).sort()).toContain("timestamp");
    const u = await client.refresh();
    expect(await u.getTargetInfo(t.path)).toBeUndefined(); // old, consistent state
    // The resigner's sweep reschedules the publish of a team with pending uploads.
    await db.query("delete from graphile_worker._private_jobs");
    const { rows } = await db.query("select * from gk_private.tuf_resign_sweep()");
    expect(rows[0].pending_uploads).toBe(pending.length);
    await publishNow(db, fx.blobs);
    expect((await client.download(t.path)).toString()).toBe("after the crash");
    // The same bytes were uploaded: nothing was signed again under an existing version.
    for (const p of pending) {
      const file = p.role === "timestamp" ? "timestamp.json" : `${p.version}.${p.role}.json`;
      if (p.role === "timestamp") continue; // timestamp.json is overwritten by later versions only
      expect(Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, file)))!).toString()).toBe(p.document);
    }
  });

  it("blob store down: documents stay pending, the job keeps its error, and a retry publishes", async () => {
    const t = await storeTarget(fx, "firmware/while-down.bin", "written while the store was down");
    fx.blobs.down = "blob store unreachable";
    try {
      await addTargets(db, fx.teamId, [t]);
      await publishNow(db, fx.blobs);
    } finally {
      fx.blobs.down = null;
    }
    // The worker records a failure asynchronously: wait for it rather than race it.
    const job = await waitFor(async () => (await jobs(db, "tuf__publish")).find((j) => j.last_error));
    expect(job.last_error).toMatch(/blob store unreachable/);
    expect(
      Number(
        (await db.query("select count(*) from gk_public.tuf_metadata where team_id = $1 and uploaded_at is null", [fx.teamId])).rows[0]
          .count,
      ),
    ).toBeGreaterThan(0);
    await db.query("update graphile_worker._private_jobs set run_at = now()");
    await publishNow(db, fx.blobs);
    expect((await client.download(t.path)).toString()).toBe("written while the store was down");
  });

  it("an unchanged repository publishes nothing new", async () => {
    const before = await roleVersions();
    const r = await signDirty(fromPool(db.pool), box, fx.teamId);
    expect(r.documents).toBe(0);
    expect(await roleVersions()).toEqual(before);
    expect((await uploadPending(fromPool(db.pool), fx.blobs, fx.teamId)).uploaded).toBe(0);
  });
});
