// A deleted team's blob prefix is purged page by page from a real blob store (filesystem, and S3
// through a real s3rver), resumes from its recorded cursor, and survives a store outage.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import type { BlobStore } from "../../src/adapters/blobs/types.ts";
import { createTestDb } from "../helpers/db.ts";
import { clearJobs, jobs, runJobs, testServices } from "../helpers/jobs.ts";
import { startS3Server } from "../helpers/s3.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { countKeys } from "../helpers/blobs.ts";

const db = await createTestDb();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-purge-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function fill(store: BlobStore, prefix: string, n: number) {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) => store.put(`${prefix}objects/${String(i + j).padStart(5, "0")}`, "x")),
    );
  }
}

async function purgeItem(team: string) {
  return (await db.query("select * from gk_public.purge_items where team_id = $1", [team])).rows[0];
}

describe("blob prefix purge", () => {
  it("filesystem: deleting a team purges exactly its prefix, page by page, and the bin empties", async () => {
    const store = new FsBlobStore(path.join(dir, "fs"));
    const team = (await insertTeam(db, { name: "fs-doomed" })).id;
    const other = (await insertTeam(db, { name: "fs-kept" })).id;
    await fill(store, `teams/${team}/`, 2300);
    await fill(store, `teams/${other}/`, 20);
    await store.put(`teams/${team}x/near-miss`, "must stay"); // same characters, not under the prefix
    await db.query("delete from gk_public.teams where id = $1", [team]);
    expect((await db.query("select kind, ref from gk_public.bin")).rows).toEqual([{ kind: "blob_prefix", ref: `teams/${team}/` }]);
    await runJobs(db, testServices({ blobs: store }));
    expect(await countKeys(store, `teams/${team}/`)).toBe(0);
    expect(await countKeys(store, `teams/${other}/`)).toBe(20);
    expect(await store.get(`teams/${team}x/near-miss`)).not.toBeNull();
    const item = await purgeItem(team);
    expect(item.completed_at).not.toBeNull();
    expect(Number(item.progress_count)).toBe(2300);
    expect((await db.query("select count(*)::int as n from gk_public.bin")).rows[0].n).toBe(0);
  });

  it("resumes from the recorded cursor after a failure mid-way", async () => {
    const real = new FsBlobStore(path.join(dir, "resume"));
    const team = (await insertTeam(db, { name: "resume" })).id;
    const prefix = `teams/${team}/`;
    await fill(real, prefix, 3500);
    // The store fails on the third page (a disk error, a dropped connection).
    let deletes = 0;
    const failing: BlobStore = {
      kind: real.kind,
      put: (k, b) => real.put(k, b),
      get: (k) => real.get(k),
      getStream: (k, o) => real.getStream(k, o),
      list: (p, o) => real.list(p, o),
      deleteMany: async (keys) => {
        if (++deletes === 3) throw new Error("EIO: injected failure on the third page");
        return real.deleteMany(keys);
      },
    };
    await db.query("delete from gk_public.teams where id = $1", [team]);
    await runJobs(db, testServices({ blobs: failing }));
    const stuck = await purgeItem(team);
    // Pages 1, 2 and 4 (deleted in parallel) landed, page 3 did not: the cursor stops before page
    // 3; every listed page is already counted (write-ahead), none will be counted twice.
    expect(stuck).toMatchObject({
      completed_at: null,
      attempts: 1,
      progress_after: `${prefix}objects/01999`,
      progress_pending_until: `${prefix}objects/03499`,
    });
    expect(Number(stuck.progress_count)).toBe(3500);
    expect(stuck.last_error).toMatch(/EIO: injected failure/);
    expect(await countKeys(real, prefix)).toBe(1000);

    // Next attempt: listing starts at the cursor, not at the beginning.
    const afters: (string | undefined)[] = [];
    const watching: BlobStore = {
      ...failing,
      list: (p, o) => (afters.push(o.after), real.list(p, o)),
      deleteMany: (k) => real.deleteMany(k),
    };
    await db.query("select gk_public.retry_bin_item('blob_prefix', $1)", [prefix]);
    await runJobs(db, testServices({ blobs: watching }));
    expect(afters[0]).toBe(`${prefix}objects/01999`);
    const done = await purgeItem(team);
    expect(done.completed_at).not.toBeNull();
    expect(Number(done.progress_count)).toBe(3500);
    expect(await countKeys(real, prefix)).toBe(0);
  });

  // s3rver deletes one object at a time (test/helpers/s3.ts): on a loaded machine its 1,200 puts
  // and deletes alone take most of a minute.
  it("S3 (real s3rver): store down → the item waits with last_error; back up → it drains", { timeout: 180_000 }, async () => {
    const s3 = await startS3Server("gk-purge");
    try {
      const store = s3.store();
      const team = (await insertTeam(db, { name: "s3-doomed" })).id;
      const prefix = `teams/${team}/`;
      await fill(store, prefix, 1200);
      await s3.stop();
      await db.query("delete from gk_public.teams where id = $1", [team]);
      await runJobs(db, testServices({ blobs: store }));
      const waiting = await purgeItem(team);
      expect(waiting.completed_at).toBeNull();
      expect(waiting.attempts).toBe(1);
      expect(waiting.last_error).toMatch(/BlobStoreUnavailableError|ECONNREFUSED|unreachable/i);
      const [job] = await jobs(db, "blobs__purge_prefix");
      expect(job.attempts).toBe(1);

      await s3.start();
      // The job's own retry is seconds away; the reconciler also brings the item back once due.
      await db.query("update gk_public.purge_items set next_attempt_at = now() - interval '1 second' where id = $1", [waiting.id]);
      await clearJobs(db);
      await db.query("select gk_public.activate_reconciler('bin__reconcile')");
      await runJobs(db, testServices({ blobs: store }));
      const done = await purgeItem(team);
      expect(done.completed_at).not.toBeNull();
      expect(done.last_error).toBeNull();
      expect(await countKeys(store, prefix)).toBe(0);
    } finally {
      await s3.dispose();
    }
  });
});
