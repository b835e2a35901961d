// A worker process SIGKILLed in the middle of the regeneration sweep loses nothing: the robots
// it stored are clean and signed once, the rest stay dirty and visible, and the next sweep (once
// the dead worker's job is released) signs exactly those — no robot signed twice, none skipped.
import crypto from "node:crypto";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { SecretBox } from "../../src/lib/secrets.ts";
import { killAndWait } from "../helpers/child.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertEcus, insertImages, insertRobots, insertRollout, insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";
import { lockingWorkers, unlockWorkers } from "../../src/worker/queue.ts";

const db = await createTestDb();
const here = path.dirname(fileURLToPath(import.meta.url));
const masterKey = crypto.randomBytes(32);
let child: ChildProcess | undefined;
afterAll(() => killAndWait(child));

const counts = async () =>
  (
    await db.query<{ clean: number; dirty: number; signed_twice: number }>(
      `select count(*) filter (where not dirty)::int as clean, count(*) filter (where dirty)::int as dirty,
              count(*) filter (where timestamp_version > 1)::int as signed_twice
         from gk_public.robot_directors`,
    )
  ).rows[0];

describe("regeneration sweep: a worker killed mid-sweep", () => {
  it("leaves every robot either stored or still dirty, and the next sweep finishes the rest", async () => {
    const team = await insertTeam(db);
    const robots = await insertRobots(db, { team, count: 1200 });
    await insertEcus(db, { robots });
    const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
    await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
    await db.query("delete from graphile_worker._private_jobs"); // the test starts the sweep itself
    await db.query(
      `select gk_private.enqueue('rollouts__regenerate', '{"limits": {"batch_size": 20}}'::jsonb, job_key := 'rollouts__regenerate',
                                 queue_name := 'rollouts__regenerate')`,
    );
    child = spawn(process.execPath, [path.join(here, "helpers/sweep-worker.ts"), db.url, masterKey.toString("base64")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await waitFor(async () => (await counts()).clean >= 60, "some robots stored", 60_000);
    await killAndWait(child);
    const atKill = await counts();
    expect(atKill.dirty).toBeGreaterThan(0); // killed mid-sweep, not after it
    expect(atKill.clean + atKill.dirty).toBe(1200);
    expect(atKill.signed_twice).toBe(0);

    // The dead worker still holds the job: release it (the dead-worker sweep does this in production).
    await unlockWorkers(db, await lockingWorkers(db, ""));
    await runJobs(db, testServices({ secrets: new SecretBox(masterKey) }));
    expect(await counts()).toEqual({ clean: 1200, dirty: 0, signed_twice: 0 });
    const states = (await db.query("select state, count(*)::int as n from gk_public.rollout_robots group by 1")).rows;
    expect(states).toEqual([{ state: "scheduled", n: 1200 }]);
  });
});
