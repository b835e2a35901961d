// The queue's contact surface with graphile-worker (src/worker/queue.ts, sql/060_queue.sql) and
// worker liveness on top of it: what a graphile-worker upgrade must keep true is checked here
// with a real job runner holding real locks — the private reads, how job-key replacement marks a
// locked job, and what releasing a dead pool does to each kind of job it held.
import { EventEmitter } from "node:events";
import { run, type Runner, type WorkerEvents } from "graphile-worker";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { quietWorkerLogger } from "../../src/lib/log.ts";
import { startHeartbeat } from "../../src/worker/heartbeat.ts";
import { listJobs } from "../../src/worker/queue.ts";
import { createTestDb } from "../helpers/db.ts";
import { clearJobs, runJobs } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";

const db = await createTestDb();

/** A real runner whose `queue__hold` jobs block until `open()`: its pool holds real locks. */
async function holdingRunner(concurrency: number): Promise<{ poolId: string; open(): void; stop(): Promise<void> }> {
  const pgPool = createPool(db.url, concurrency + 2);
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const events: WorkerEvents = new EventEmitter();
  let poolId = "";
  events.on("pool:create", ({ workerPool }) => (poolId = workerPool.id));
  const runner: Runner = await run({
    pgPool,
    concurrency,
    noHandleSignals: true,
    pollInterval: 50,
    logger: quietWorkerLogger(),
    events,
    taskList: { queue__hold: () => gate },
  });
  return {
    poolId,
    open,
    async stop() {
      open();
      await runner.stop();
      await pgPool.end();
    },
  };
}

const held = (poolId: string) =>
  db.query("select count(*)::int as n from graphile_worker.jobs where locked_by = $1", [poolId]).then((r) => r.rows[0].n as number);

async function byTask(task: string) {
  const { rows } = await db.query("select running, stalled, failed from gk_private.queue_jobs_by_task() where task = $1", [task]);
  return rows[0];
}

/** Registers `id` and makes its heartbeat a thing of the past (as if its process died). */
async function deadPool(id: string) {
  await db.query("select gk_private.queue_worker_heartbeat($1, 'test-host', 4242, 30)", [id]);
  await db.query(
    "update gk_private.queue_workers set heartbeat_at = now() - interval '1 minute', expires_at = now() - interval '1 second' where id = $1",
    [id],
  );
}

describe("private reads (src/worker/queue.ts)", () => {
  it("listJobs returns payloads; an invalid payload fails its job permanently (failJobPermanently)", async () => {
    await clearJobs(db);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": "x"}')`);
    expect((await listJobs(db, "system__noop"))[0].payload).toEqual({ n: "x" });
    await runJobs(db);
    const [job] = await listJobs(db, "system__noop");
    expect(job.attempts).toBe(job.max_attempts);
    expect(job.last_error).toMatch(/invalid payload for system__noop/);
    await clearJobs(db);
  });
});

describe("releasing a dead worker pool", () => {
  let r: Awaited<ReturnType<typeof holdingRunner>>;
  beforeAll(async () => {
    await clearJobs(db);
    r = await holdingRunner(3);
  });
  afterAll(() => r.stop());

  it("superseded copies are deleted, last attempts failed with why, the rest run again; its activations close", async () => {
    await db.query(`select gk_private.enqueue('queue__hold', '{}', job_key := 'k1', queue_name := 'q1')`);
    await db.query(`select gk_private.enqueue('queue__hold', '{"plain": true}')`);
    await db.query(`select gk_private.enqueue('queue__hold', '{"last": true}', max_attempts := 1)`);
    await waitFor(async () => (await held(r.poolId)) === 3, "the runner holding three jobs");
    const activation = (await db.query("select gk_private.activation_start('gadgets__scrap', $1) as id", [r.poolId])).rows[0].id;
    // A cron tick / activate_reconciler while the keyed job runs: graphile-worker hands the key to
    // a new job and marks the locked copy. The mark this module relies on (updated_at moves past
    // locked_at only then) is checked against graphile-worker itself here.
    await db.query(`select gk_private.enqueue('queue__hold', '{"next": true}', job_key := 'k1', queue_name := 'q1')`);
    const before = (
      await db.query(
        "select p.payload, v.key, v.attempts, v.max_attempts, v.updated_at > v.locked_at as marked from graphile_worker.jobs v join graphile_worker._private_jobs p using (id) where v.locked_by = $1 order by v.id",
        [r.poolId],
      )
    ).rows;
    expect(before).toEqual([
      { payload: {}, key: null, attempts: 25, max_attempts: 25, marked: true },
      { payload: { plain: true }, key: null, attempts: 1, max_attempts: 25, marked: false },
      { payload: { last: true }, key: null, attempts: 1, max_attempts: 1, marked: false },
    ]);
    expect(await byTask("queue__hold")).toEqual({ running: 3, stalled: 0, failed: 0 });

    await deadPool(r.poolId);
    expect(await byTask("queue__hold")).toEqual({ running: 0, stalled: 3, failed: 0 });
    const { rows } = await db.query("select gk_private.queue_reap_workers(100) as r");
    expect(rows[0].r).toEqual({
      reaped_workers: [r.poolId],
      released_jobs: 1,
      superseded_jobs: 1,
      exhausted_jobs: 1,
      closed_activations: [Number(activation)],
      live_workers: 0,
      more: false,
    });
    const after = (await listJobs(db, "queue__hold")).map((j) => ({
      payload: j.payload,
      key: j.key,
      locked: j.locked_by !== null,
      failed: j.attempts >= j.max_attempts,
      error: j.last_error,
    }));
    expect(after).toEqual([
      { payload: { plain: true }, key: null, locked: false, failed: false, error: null },
      {
        payload: { last: true },
        key: null,
        locked: false,
        failed: true,
        error: expect.stringMatching(/stopped heartbeating .*during its last attempt/),
      },
      { payload: { next: true }, key: "k1", locked: false, failed: false, error: null },
    ]);
    // The queue the dead pool held is free again, so the replacement can run.
    expect((await db.query("select locked_by from graphile_worker._private_job_queues where queue_name = 'q1'")).rows).toEqual([
      { locked_by: null },
    ]);
    expect(await byTask("queue__hold")).toEqual({ running: 0, stalled: 0, failed: 1 });
    expect((await db.query("select status, error from gk_public.activations where id = $1", [activation])).rows[0]).toEqual({
      status: "failed",
      error: expect.stringMatching(/stopped heartbeating/),
    });
    expect((await db.query("select count(*)::int as n from gk_private.queue_workers")).rows[0].n).toBe(0);
  });
});

describe("heartbeats", () => {
  it("register, beat and deregister a pool; a bad TTL is refused", async () => {
    const hb = startHeartbeat({ db, log: pino({ level: "silent" }), ttlSeconds: 30 });
    await hb.register("pool-a");
    const { rows } = await db.query(
      "select hostname, pid, expires_at - heartbeat_at as ttl from gk_private.queue_workers where id = 'pool-a'",
    );
    expect(rows).toEqual([{ hostname: expect.any(String), pid: process.pid, ttl: { seconds: 30 } }]);
    await hb.stop();
    expect((await db.query("select count(*)::int as n from gk_private.queue_workers")).rows[0].n).toBe(0);
    await expect(db.query("select gk_private.queue_worker_heartbeat('p', 'h', 1, 0)")).rejects.toMatchObject({ code: "22023" });
  });

  it("a heartbeat that sees an expired peer activates the reaper once, and the reaper records what it did", async () => {
    await clearJobs(db);
    await deadPool("pool-gone");
    for (let i = 0; i < 3; i++) await db.query("select gk_private.queue_worker_heartbeat('pool-live', 'h', 1, 30)");
    const reapers = await listJobs(db, "queue__reap_workers");
    expect(reapers).toHaveLength(1);
    expect(reapers[0].run_at.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    await runJobs(db);
    const { rows } = await db.query(
      "select status, details from gk_public.activations where task = 'queue__reap_workers' order by id desc limit 1",
    );
    expect(rows[0]).toMatchObject({ status: "succeeded", details: { reaped_workers: ["pool-gone"], live_workers: 1, errors: [] } });
    await db.query("delete from gk_private.queue_workers");
  });
});
