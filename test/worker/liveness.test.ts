// Worker liveness with real processes: a `worker` SIGKILLed while it holds jobs — one of them
// replaced through its job key while it ran, as a cron tick or activate_reconciler does — and
// another worker started: the dead worker's heartbeat expires, the reaper (queue__reap_workers,
// activated by the live worker's heartbeat) releases its jobs, they run again, `status --json`
// shows nothing running or stalled, and gk_jobs_failed stays 0. WORKER_HEARTBEAT_TTL is 2 s here
// (60 s by default) so the test is quick.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createMetrics, jobMetrics } from "../../src/server/metrics.ts";
import { cliEnv, runCli, spawnCli, tempHome } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";

const db = await createTestDb();
const home = tempHome();
afterAll(() => fs.rmSync(path.dirname(home), { recursive: true, force: true }));
const env = cliEnv({
  DATABASE_URL: db.url,
  GROUNDSKEEPER_HOME: home,
  GK_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
  LOG_LEVEL: "info",
  WORKER_HEARTBEAT_TTL: "2",
});

const noop = async () =>
  (
    await db.query(
      `select count(*)::int as total, count(*) filter (where locked_at is not null)::int as locked,
              array_agg(distinct locked_by) filter (where locked_by is not null) as pools
         from graphile_worker.jobs where task_identifier = 'system__noop'`,
    )
  ).rows[0];

describe("a worker SIGKILLed while it holds jobs", () => {
  it("its jobs run again on another worker; nothing shows as running, stalled or failed", { timeout: 150_000 }, async () => {
    const dying = spawnCli(["worker", "--no-cron", "--concurrency", "3"], env);
    let next: ReturnType<typeof spawnCli> | undefined;
    try {
      await expect.poll(() => dying.stderr(), { timeout: 60_000 }).toMatch(/"worker running"/);
      // Long on the first attempt (the worker that dies), quick on the next.
      const held = `{"ms": 60000, "hold_attempts": 1}`;
      await db.query(`select gk_private.enqueue('system__noop', $1, job_key := 'liveness', queue_name := 'liveness')`, [held]);
      await db.query(`select gk_private.enqueue_many('system__noop', array[$1::jsonb, $1::jsonb])`, [held]);
      await expect.poll(async () => (await noop()).locked, { timeout: 30_000, interval: 50 }).toBe(3);
      const [deadPool] = (await noop()).pools;
      // Job-key replacement while the keyed job runs (a cron tick does this to a running reconciler).
      await db.query(`select gk_private.enqueue('system__noop', '{}', job_key := 'liveness', queue_name := 'liveness')`);
      await dying.stop("SIGKILL");

      next = spawnCli(["worker", "--no-cron"], env);
      await expect.poll(async () => (await noop()).total, { timeout: 90_000, interval: 200 }).toBe(0);

      const { rows } = await db.query(
        "select details from gk_public.activations where task = 'queue__reap_workers' and status = 'succeeded'",
      );
      expect(rows.map((r) => r.details)).toContainEqual(
        expect.objectContaining({ reaped_workers: [deadPool], released_jobs: 2, superseded_jobs: 1, exhausted_jobs: 0 }),
      );
      const status = await runCli(["status", "--json"], env);
      expect(status.code, status.stderr).toBe(0);
      const { jobs, queue_workers } = JSON.parse(status.stdout);
      expect(jobs.failed).toEqual([]);
      for (const t of jobs.tasks) expect(t, t.task).toMatchObject({ running: 0, stalled: 0, failed: 0 });
      expect(queue_workers).toEqual([expect.objectContaining({ pid: next.child.pid, expired: false })]);
      const metrics = await createMetrics(db.pool, [jobMetrics]).render();
      const failed = metrics.split("\n").filter((l) => l.startsWith("gk_jobs_failed{"));
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.filter((l) => !l.endsWith(" 0"))).toEqual([]);
    } finally {
      await dying.stop("SIGKILL");
      if (next) expect(await next.stop("SIGTERM"), next.stderr()).toBe(0);
    }
    // A clean stop deregisters.
    expect((await db.query("select count(*)::int as n from gk_private.queue_workers")).rows[0].n).toBe(0);
  });
});
