// Two worker processes publish the same repository concurrently while writers add and remove
// targets and a tuf-js client refreshes in a loop: every state the client sees is accepted,
// publishes serialize on the repository row (no duplicate or skipped version, no failed
// job), and a bin's version never goes backwards from one snapshot to the next.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { addTargets, Client, fakeTarget, setupRepository, type TufFixture, verifyEveryRepository } from "./helpers/tuf.ts";
import { waitFor } from "../helpers/wait.ts";

const db = await createTestDb();
verifyEveryRepository(db);
const here = path.dirname(fileURLToPath(import.meta.url));
let fx: TufFixture;
const procs: { name: string; child: ChildProcess; out: string[] }[] = [];

function startWorkerProcess(name: string) {
  const child = spawn(process.execPath, [path.join(here, "helpers/worker-process.ts"), db.url, fx.blobs.root, name], {
    env: { ...process.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: string[] = [];
  child.stdout!.on("data", (d) => out.push(d.toString()));
  child.stderr!.on("data", (d) => out.push(d.toString()));
  procs.push({ name, child, out });
}

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 64, lifetimes: { publishDelay: "0 seconds" } });
  startWorkerProcess("w1");
  startWorkerProcess("w2");
  await waitFor(async () => procs.every((p) => p.out.join("").includes("worker ready")), "both workers ready");
});
afterAll(async () => {
  for (const p of procs) p.child.kill("SIGTERM");
  await Promise.all(procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once("exit", r)))));
  await fx?.close();
});

describe("two worker processes", () => {
  it("publish concurrently without corrupting the repository, and the client accepts every state", async () => {
    const client = await Client.create(fx);
    let stop = false;
    const seen = new Set<number>();
    const failures: string[] = [];
    const refresher = (async () => {
      while (!stop) {
        try {
          await client.refresh();
          seen.add(client.trusted("timestamp").signed.version);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();

    // Three writers, 30 batches of 100 targets, some removals, and extra unkeyed publish jobs
    // so that both processes really run publishes of the same team at the same time.
    const writer = async (w: number) => {
      for (let b = 0; b < 10; b++) {
        const batch = Array.from({ length: 100 }, (_, i) => fakeTarget(b * 100 + i, `w${w}`));
        await addTargets(db, fx.teamId, batch);
        if (b % 3 === 2) {
          await db.query("select gk_public.tuf_remove_targets($1, $2)", [fx.teamId, batch.slice(0, 10).map((t) => t.path)]);
        }
        await db.query(
          "select graphile_worker.add_jobs(array_fill(row('tuf__publish', json_build_object('team_id', $1::uuid), null, null, null, null, null, null)::graphile_worker.job_spec, array[4]))",
          [fx.teamId],
        );
      }
    };
    await Promise.all([writer(1), writer(2), writer(3)]);

    const settled = waitFor(
      async () => {
        const { rows } = await db.query(
          `select (select count(*) from graphile_worker._private_jobs)::int as jobs,
                (select count(*) from gk_public.tuf_roles where team_id = $1 and dirty)::int as dirty,
                (select count(*) from gk_public.tuf_metadata where team_id = $1 and uploaded_at is null)::int as pending`,
          [fx.teamId],
        );
        return rows[0].jobs === 0 && rows[0].dirty === 0 && rows[0].pending === 0;
      },
      "all publishes done",
      150_000,
    );
    // On a timeout, say what was left: the jobs with their errors and what the workers printed.
    await settled.catch(async (e) => {
      const { rows } = await db.query("select task_identifier, attempts, last_error, locked_by, run_at from graphile_worker.jobs");
      throw new Error(
        `${(e as Error).message}\njobs: ${JSON.stringify(rows)}\n${procs.map((p) => `${p.name}: ${p.out.join("").slice(-2000)}`).join("\n")}`,
      );
    });
    stop = true;
    await refresher;

    expect(failures).toEqual([]);
    const u = await client.refresh();
    expect(seen.size).toBeGreaterThan(1);
    for (const w of [1, 2, 3]) {
      expect((await u.getTargetInfo(fakeTarget(950, `w${w}`).path))?.length).toBe(fakeTarget(950, `w${w}`).length);
      expect(await u.getTargetInfo(fakeTarget(200, `w${w}`).path)).toBeUndefined(); // removed in batch 2
    }
    const count = Number((await db.query("select count(*) from gk_public.tuf_targets where team_id = $1", [fx.teamId])).rows[0].count);
    expect(count).toBe(3 * (1000 - 3 * 10));

    // Both processes ran publishes of this team; none failed.
    const logs = procs.map((p) => p.out.join(""));
    for (const l of logs) expect(l).toMatch(/"task":"tuf__publish"/);
    for (const l of logs) expect(l).not.toMatch(/Failed task/);

    // Snapshot versions are contiguous and no bin version ever goes backwards.
    const snaps = (
      await db.query("select version, document from gk_public.tuf_metadata where team_id = $1 and role = 'snapshot' order by version", [
        fx.teamId,
      ])
    ).rows;
    expect(snaps.map((s) => s.version)).toEqual(snaps.map((_, i) => i + 1));
    let prev: Record<string, { version: number }> = {};
    for (const s of snaps) {
      const meta = JSON.parse(s.document).signed.meta as Record<string, { version: number }>;
      for (const [file, m] of Object.entries(prev)) expect(meta[file].version).toBeGreaterThanOrEqual(m.version);
      prev = meta;
    }
  }, 180_000);
});
