// A real worker process SIGKILLed in the middle of a filesystem prefix purge — after its deletes
// landed, before it pruned their directories or recorded its cursor — and the purge resumed: the
// count is exact, nothing under the team's prefix is left (no empty directory, the team's own
// directory included); a new purge item is leased like a certificate, so the reconciler does not
// re-enqueue a purge whose first job is running.
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { countKeys } from "../helpers/blobs.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const db = await createTestDb({ settings: { "groundskeeper.bin_lease": "1 second" } });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-purge-kill-"));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

function worker(blobsDir: string, effects: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(here, "../certificates/helpers/worker-process.ts")], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      GK_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
      GK_BLOBS_DIR: blobsDir,
      GK_TEST_PURGE_PAUSE_MS: "60000",
      GK_TEST_EFFECT_LOG: effects,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => String(d).includes("ready") && resolve(child));
    child.on("exit", (code) => reject(new Error(`worker exited (${code}) before ready`)));
  });
}

/** Directories left under `root` (recursively), as paths relative to it. */
function dirsUnder(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

describe("filesystem purge killed mid-way", () => {
  it("SIGKILL after deletes landed: resumed, the count is exact and no directory is left", { timeout: 120_000 }, async () => {
    const blobsDir = path.join(dir, "blobs");
    const store = new FsBlobStore(blobsDir);
    const team = (await insertTeam(db, { name: "killed" })).id;
    const kept = (await insertTeam(db, { name: "kept" })).id;
    const N = 5500; // six pages of 1000: four are deleted at once, two remain after the kill
    for (let i = 0; i < N; i += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, N - i) }, (_, j) =>
          store.put(`teams/${team}/d${String((i + j) % 40).padStart(2, "0")}/${String(i + j).padStart(5, "0")}`, "x"),
        ),
      );
    }
    await store.put(`teams/${kept}/keep`, "x");
    // A new purge is not due before its first job had a lease's time (seen in the deleting
    // transaction, whose now() stands still).
    const c = await db.pool.connect();
    let item: { id: string; leased: boolean };
    try {
      await c.query("begin");
      await c.query("delete from gk_public.teams where id = $1", [team]);
      [item] = (await c.query("select id, next_attempt_at > now() as leased from gk_public.purge_items where team_id = $1", [team])).rows;
      await c.query("commit");
    } finally {
      c.release();
    }
    expect(item.leased).toBe(true);

    const effects = path.join(dir, "effects.log");
    const first = await worker(blobsDir, effects);
    // Four pages unlinked, the worker paused before pruning and recording their cursor: kill it.
    const unlinked = () => (fs.existsSync(effects) ? (fs.readFileSync(effects, "utf8").match(/ unlinked /g)?.length ?? 0) : 0);
    await expect.poll(unlinked, { timeout: 60_000, interval: 100 }).toBe(4);
    const gone = new Promise((r) => first.once("exit", r));
    first.kill("SIGKILL");
    await gone;
    const killed = (await db.query("select * from gk_public.purge_items where id = $1", [item.id])).rows[0];
    expect(killed).toMatchObject({ completed_at: null, progress_after: null });
    expect(Number(killed.progress_count)).toBe(4000); // counted before deleting (write-ahead)
    expect(await countKeys(store, `teams/${team}/`)).toBe(N - 4000);
    expect(dirsUnder(path.join(blobsDir, "objects", "teams", team)).length).toBeGreaterThan(0);

    // The dead worker's job stays locked; the reconciler hands the item over once its lease ran out.
    await expect
      .poll(
        async () =>
          (await db.query("select next_attempt_at <= now() as due from gk_public.purge_items where id = $1", [item.id])).rows[0].due,
        {
          timeout: 10_000,
          interval: 200,
        },
      )
      .toBe(true);
    await db.query("select gk_public.activate_reconciler('bin__reconcile')");
    await runJobs(db, testServices({ blobs: store }));
    const done = (await db.query("select * from gk_public.purge_items where id = $1", [item.id])).rows[0];
    expect(done.completed_at).not.toBeNull();
    expect(Number(done.progress_count)).toBe(N);
    expect(await countKeys(store, `teams/${team}/`)).toBe(0);
    expect(fs.existsSync(path.join(blobsDir, "objects", "teams", team))).toBe(false);
    expect(dirsUnder(path.join(blobsDir, "objects"))).toEqual(["teams", path.join("teams", kept)]);
  });
});
