// Real worker processes against one database: SIGKILL one mid-drain and start another; run two at
// once. The bin must reach zero, the CA's CRL (read with openssl) must hold exactly the serials that
// had to be revoked, and the team's blobs must be gone while everything else stays.
import type { ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { createTestDb } from "../helpers/db.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { crlSerials } from "./helpers/ca-fixtures.ts";
import { workerProcesses } from "./helpers/spawn-worker.ts";
import { ids as rowIds, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { countKeys } from "../helpers/blobs.ts";

const db = await createTestDb();
const masterKey = crypto.randomBytes(32);
const box = new SecretBox(masterKey);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-faults-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
// A short lease so the reconciler re-enqueues a dead worker's items within the test.
await db.query(`alter database ${db.name} set groundskeeper.bin_lease = '2 seconds'`);
const workers = workerProcesses({ DATABASE_URL: db.url, GK_MASTER_KEY: masterKey.toString("base64") });

function startWorkerProcess(caName: string, blobsDir: string, extra: Record<string, string> = {}): Promise<ChildProcess> {
  return workers.start({ GK_CA_NAME: caName, GK_BLOBS_DIR: blobsDir, ...extra });
}

const kill = workers.kill;

/** A team with robots (certificates issued at the CA, some never downloaded), credentials and blobs. */
async function doomedTeam(name: string, ca: LocalCa, blobs: FsBlobStore, robots: number, objects: number) {
  const team = (await insertTeam(db, { name })).id;
  const ids = rowIds(await insertRobots(db, { team, count: robots }));
  await db.query("select gk_public.request_certificate(r) from unnest($1::uuid[]) r", [ids]);
  await db.query("select gk_public.create_provisioning_credential($1, 'cred-' || g) from generate_series(1, 5) g", [team]);
  await runJobs(db, testServices({ ca }));
  for (let i = 0; i < objects; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, objects - i) }, (_, j) => blobs.put(`teams/${team}/o/${String(i + j).padStart(6, "0")}`, "x")),
    );
  }
  const { rows } = await db.query("select serial from gk_public.certificates where owner_team_id = $1 and status = 'issued'", [team]);
  expect(rows).toHaveLength(robots + 10);
  expect(await countKeys(blobs, `teams/${team}/`)).toBe(objects);
  return { team, serials: new Set<string>(rows.map((r) => r.serial)) };
}

async function bin(): Promise<number> {
  return (await db.query("select count(*)::int as n from gk_public.bin")).rows[0].n;
}

/** Waits for the bin to empty, ticking the reconciler the way the crontab does (every 2 s here). */
async function drain(timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  while ((await bin()) > 0) {
    if (Date.now() > until)
      throw new Error(
        `bin still holds ${await bin()} items: ${JSON.stringify((await db.query("select kind, attempts, last_error from gk_public.bin limit 5")).rows)}`,
      );
    await db.query("select gk_private.enqueue('bin__reconcile', job_key := 'bin__reconcile')");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

describe("faults with real worker processes", () => {
  it("SIGKILL mid-drain, another worker takes over: bin → 0, CRL = exactly the team's serials, blobs gone", {
    timeout: 240_000,
  }, async () => {
    const caName = "sigkill";
    const ca = new LocalCa(db.pool, box, { name: caName, crlDebounceMs: 0 });
    const blobsDir = path.join(dir, "sigkill");
    const blobs = new FsBlobStore(blobsDir);
    const { team, serials } = await doomedTeam("sigkill", ca, blobs, 900, 4000);
    const survivor = await doomedTeam("sigkill-survivor", ca, blobs, 20, 50);

    await db.query("delete from gk_public.teams where id = $1", [team]);
    expect(await bin()).toBe(911);
    const first = await startWorkerProcess(caName, blobsDir, { GK_TEST_SLOW_MS: "700" });
    // Mid-drain: some revocations done, some not; the purge under way.
    await expect
      .poll(
        async () =>
          (await db.query("select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status = 'revoked'", [team]))
            .rows[0].n,
        { timeout: 60_000, interval: 100 },
      )
      .toBeGreaterThan(0);
    await kill(first);
    const left = await bin();
    expect(left).toBeGreaterThan(0);
    // The dead worker's jobs stay locked (graphile-worker frees them only after 4 h) …
    const { rows: locked } = await db.query("select count(*)::int as n from graphile_worker._private_jobs where locked_at is not null");
    expect(locked[0].n).toBeGreaterThan(0);

    // … so the successor gets the work through the reconciler, not through those jobs.
    const second = await startWorkerProcess(caName, blobsDir);
    try {
      await drain();
    } finally {
      await kill(second);
    }
    expect(await crlSerials(ca)).toEqual(serials);
    const { rows } = await db.query(
      "select status, count(*)::int as n from gk_public.certificates where owner_team_id = $1 group by status",
      [team],
    );
    expect(rows).toEqual([{ status: "revoked", n: 910 }]);
    expect(await countKeys(blobs, `teams/${team}/`)).toBe(0);
    expect(await countKeys(blobs, `teams/${survivor.team}/`)).toBe(50);
    const { rows: kept } = await db.query(
      "select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status = 'issued'",
      [survivor.team],
    );
    expect(kept[0].n).toBe(30);
  });

  it("two workers at once: nothing lost, every serial revoked once at the CA", { timeout: 240_000 }, async () => {
    const caName = "pair";
    const ca = new LocalCa(db.pool, box, { name: caName, crlDebounceMs: 0 });
    const blobsDir = path.join(dir, "pair");
    const blobs = new FsBlobStore(blobsDir);
    const { team, serials } = await doomedTeam("pair", ca, blobs, 700, 2500);
    const effects = path.join(dir, "pair-effects.log");
    // Both idle and listening before the delete; one job at a time each, and each CA call takes a
    // moment, so the four revocation batches are shared between them.
    const opts = { GK_TEST_EFFECT_LOG: effects, GK_TEST_SLOW_MS: "500", GK_TEST_CONCURRENCY: "1" };
    const workers = await Promise.all([startWorkerProcess(caName, blobsDir, opts), startWorkerProcess(caName, blobsDir, opts)]);
    try {
      await db.query("delete from gk_public.teams where id = $1", [team]);
      await drain();
    } finally {
      await Promise.all(workers.map(kill));
    }
    expect(await crlSerials(ca)).toEqual(serials);
    const calls = fs
      .readFileSync(effects, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    expect(new Set(calls.map((c) => c[0])).size).toBe(2); // both workers did some of it
    const revokedSerials = calls.filter((c) => c[1] === "revoke").flatMap((c) => c.slice(2));
    const purged = calls.filter((c) => c[1] === "purge").reduce((n, c) => n + Number(c[2]), 0);
    expect(purged).toBe(2500); // every page deleted once
    expect(revokedSerials.length).toBe(serials.size); // none twice
    expect(new Set(revokedSerials)).toEqual(serials);
    expect(await countKeys(blobs, `teams/${team}/`)).toBe(0);
  });
});
