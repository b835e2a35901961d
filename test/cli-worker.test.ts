// Real `worker` and `start` processes: a graceful stop finishes the running job AND records it
// before the process exits; a database outage mid-job leaves the worker running, and when the
// database is back every job is done, none lost or failed.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, it } from "vitest";
import { cliEnv, spawnCli, tempHome } from "./helpers/cli.ts";
import { createTestDb, type TestDb } from "./helpers/db.ts";
import { startTcpProxy } from "./helpers/tcp-proxy.ts";

// The three scenarios mostly wait (on a job, on the outage): they run side by side, each with a
// database and a home of its own, so one's job counts never see another's jobs.
const homes: string[] = [];
afterAll(() => {
  for (const h of homes) fs.rmSync(path.dirname(h), { recursive: true, force: true });
});
const masterKey = crypto.randomBytes(32).toString("base64");
async function setting() {
  const db = await createTestDb();
  const home = tempHome();
  homes.push(home);
  const env = (extra: Record<string, string> = {}) =>
    cliEnv({ DATABASE_URL: db.url, GROUNDSKEEPER_HOME: home, GK_MASTER_KEY: masterKey, PORT: "0", LOG_LEVEL: "info", ...extra });
  return { db, env };
}
const [forWorker, forStart, forOutage] = await Promise.all([setting(), setting(), setting()]);

async function noopJobs(db: TestDb): Promise<{ locked: number; total: number; failed: number }> {
  const { rows } = await db.query(
    `select count(*) filter (where locked_at is not null)::int as locked, count(*)::int as total,
            count(*) filter (where attempts >= max_attempts)::int as failed
       from graphile_worker.jobs where task_identifier = 'system__noop'`,
  );
  return rows[0];
}

describe.concurrent("graceful stop records the running job", () => {
  for (const [command, { db, env }] of [
    [["worker", "--no-cron"], forWorker],
    [["start"], forStart],
  ] as const) {
    it(`${command[0]}: SIGTERM while a job runs → it finishes and its row is gone before the process exits`, {
      timeout: 90_000,
    }, async ({ expect }) => {
      await db.query("delete from graphile_worker._private_jobs"); // nothing left from the template
      const proc = spawnCli([...command], env());
      try {
        await expect.poll(() => proc.stderr(), { timeout: 60_000 }).toMatch(/"worker running"/);
        if (command[0] === "start") await proc.waitFor(/Groundskeeper is running/);
        await db.query(`select gk_private.enqueue('system__noop', '{"ms": 1500}')`);
        await expect.poll(async () => (await noopJobs(db)).locked, { timeout: 30_000, interval: 50 }).toBe(1);
      } catch (e) {
        await proc.stop("SIGKILL");
        throw e;
      }
      expect(await proc.stop("SIGTERM"), proc.stderr()).toBe(0);
      expect(proc.stderr()).toMatch(/Completed task \d+ \(system__noop/);
      // Not locked for 4 hours: completed, so the row is gone.
      expect(await noopJobs(db)).toEqual({ locked: 0, total: 0, failed: 0 });
    });
  }
});

// How long the database is away in the test (the 30 s version: scripts/db-outage.ts).
const OUTAGE_MS = Number(process.env.GK_TEST_OUTAGE_MS ?? 4_000);

describe.concurrent("a database outage while jobs run", () => {
  it("leaves the worker running; when the database is back every job is done, none lost or failed", {
    timeout: OUTAGE_MS + 120_000,
  }, async ({ expect }) => {
    const { db, env } = forOutage;
    await db.query("delete from graphile_worker._private_jobs");
    const proxy = await startTcpProxy(db.url);
    const proc = spawnCli(["worker", "--no-cron", "--concurrency", "4"], env({ DATABASE_URL: proxy.url(db.url) }));
    try {
      await expect.poll(() => proc.stderr(), { timeout: 60_000 }).toMatch(/"worker running"/);
      await db.query(`select gk_private.enqueue_many('system__noop', array(select '{"ms": 400}'::jsonb from generate_series(1, 24)))`);
      await expect.poll(async () => (await noopJobs(db)).locked, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
      await proxy.stop(); // jobs in flight cannot record their outcome; nothing can connect
      // The platform keeps writing to the database meanwhile: more work arrives.
      await db.query(`select gk_private.enqueue_many('system__noop', array(select '{"ms": 50}'::jsonb from generate_series(1, 8)))`);
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      expect(proc.child.exitCode, proc.stderr()).toBeNull();
      await proxy.start();
      await expect.poll(async () => (await noopJobs(db)).total, { timeout: 60_000, interval: 200 }).toBe(0);
      expect(proc.child.exitCode, proc.stderr()).toBeNull();
      expect(proc.stderr()).toMatch(/database unavailable/);
    } finally {
      const code = await proc.stop("SIGTERM");
      await proxy.stop();
      expect(code, proc.stderr()).toBe(0);
    }
  });
});
