// The reconciler contract (src/worker/reconciler.ts): typed status JSON with lists and counts,
// item errors collected, per-activation limits, the registry from tasks/ and the crontab,
// "run it now" (activate_reconciler) with the crontab's job key, and /metrics reading one
// activation per task by primary key.
import { runOnce } from "graphile-worker";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createPool } from "../../src/db/pool.ts";
import { quietWorkerLogger } from "../../src/lib/log.ts";
import { activationMetrics, createMetrics } from "../../src/server/metrics.ts";
import type { TaskFactory } from "../../src/worker/define-task.ts";
import { crontabLine, readCrontab } from "../../src/worker/crontab.ts";
import { defineReconciler } from "../../src/worker/reconciler.ts";
import { reconcilerEntries } from "../../src/worker/reconciler-registry.ts";
import { createTestDb } from "../helpers/db.ts";
import { inProcessGraphql } from "../helpers/graphql.ts";
import { clearJobs, jobs, testServices } from "../helpers/jobs.ts";

const db = await createTestDb();
const api = await inProcessGraphql(db);

/** Runs the due jobs of one task defined here (not in tasks/) the way a worker would. */
async function runTask(name: string, factory: TaskFactory) {
  const pgPool = createPool(db.url, 4);
  try {
    await runOnce({ pgPool, logger: quietWorkerLogger(), concurrency: 1, taskList: { [name]: factory(testServices()) } });
  } finally {
    await pgPool.end();
  }
}

async function latest(task: string) {
  return (await db.query("select * from gk_public.activations where task = $1 order by id desc limit 1", [task])).rows[0];
}

const gadgets = defineReconciler({
  name: "gadgets__scrap",
  description: "Scraps doomed gadgets.",
  limits: z.object({ max_items: z.number().int().positive().default(3) }),
  status: z.object({ scrapped: z.number().int(), scrapped_ids: z.array(z.string()), skipped: z.number().int() }),
  async run({ limits, itemError }) {
    const all = ["g1", "g2", "g3", "g4", "g5"];
    const mine = all.slice(0, limits.max_items);
    await itemError("g2", new Error("gadget g2 is welded shut"));
    return { scrapped: mine.length - 1, scrapped_ids: mine.filter((g) => g !== "g2"), skipped: all.length - mine.length };
  },
});

describe("defineReconciler", () => {
  it("stores the typed status with its lists, the item errors and the limits; counts are its numbers", async () => {
    await db.query("select gk_private.enqueue('gadgets__scrap')");
    await runTask("gadgets__scrap", gadgets);
    const a = await latest("gadgets__scrap");
    expect(a).toMatchObject({ status: "succeeded", error: null, counts: { scrapped: 2, skipped: 2 } });
    expect(a.details).toEqual({
      scrapped: 2,
      scrapped_ids: ["g1", "g3"],
      skipped: 2,
      errors: ["g2: gadget g2 is welded shut"],
      limits: { max_items: 3 },
    });
    expect(a.worker_id).toMatch(/^otpool-/);
    const { rows } = await db.query("select item, error from gk_public.activation_errors where activation_id = $1", [a.id]);
    expect(rows).toEqual([{ item: "g2", error: "gadget g2 is welded shut" }]);
  });

  it("takes per-activation limits from the payload; bad limits fail the job permanently", async () => {
    await db.query(`select gk_private.enqueue('gadgets__scrap', '{"limits": {"max_items": 5}}')`);
    await runTask("gadgets__scrap", gadgets);
    expect((await latest("gadgets__scrap")).details).toMatchObject({ scrapped: 4, skipped: 0, limits: { max_items: 5 } });

    await clearJobs(db);
    await db.query(`select gk_private.enqueue('gadgets__scrap', '{"limits": {"max_items": -1}}')`);
    await runTask("gadgets__scrap", gadgets);
    const [job] = await jobs(db, "gadgets__scrap");
    expect(job.attempts).toBe(job.max_attempts);
    expect(job.last_error).toMatch(/invalid payload for gadgets__scrap: limits.max_items/);
    await clearJobs(db);
  });

  it("a status that does not match its schema, or a run that throws, is a failed activation with the reason", async () => {
    const wrong = defineReconciler({
      name: "gadgets__count",
      description: "Counts gadgets.",
      status: z.object({ counted: z.number().int() }),
      async run() {
        return { counted: "many" } as unknown as { counted: number };
      },
    });
    await db.query("select gk_private.enqueue('gadgets__count')");
    await runTask("gadgets__count", wrong);
    expect(await latest("gadgets__count")).toMatchObject({
      status: "failed",
      error: expect.stringMatching(/gadgets__count returned a status that does not match its schema: counted:/),
    });
    const [job] = await jobs(db, "gadgets__count");
    expect(job).toMatchObject({ attempts: 1, last_error: expect.stringMatching(/does not match its schema/) });

    const { rows } = await db.query("select succeeded, failed from gk_private.activation_tasks where task = 'gadgets__count'");
    expect(rows).toEqual([{ succeeded: "0", failed: "1" }]);
    await clearJobs(db);
  });

  it("refuses to run under another task's name", async () => {
    await db.query("select gk_private.enqueue('gadgets__other')");
    await runTask("gadgets__other", gadgets);
    const [job] = await jobs(db, "gadgets__other");
    expect(job.last_error).toMatch(/reconciler gadgets__scrap runs as task gadgets__other/);
    await clearJobs(db);
  });
});

describe("the registry of reconcilers", () => {
  it("lists every reconciler of tasks/ with the crontab's schedule, job key and queue", async () => {
    const { rows } = await db.query("select name, schedule, job_key, queue_name from gk_public.reconcilers order by name");
    const crontabTasks = (await readCrontab())
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("#"))
      .map((l) => l.trim().split(/\s+/)[5]);
    expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining(crontabTasks));
    for (const r of rows) expect(r).toMatchObject({ job_key: r.name, queue_name: r.name });
    expect(rows.find((r) => r.name === "retention__sweep").schedule).toBe("17 * * * *");
  });

  it("fails clearly when the crontab schedules a task that is not a reconciler", async () => {
    await expect(reconcilerEntries("* * * * * system__noop ?id=noop")).rejects.toThrow(
      /crontab schedules system__noop, which is not a reconciler/,
    );
  });

  it("schedules every reconciler that has a schedule, with its name as id, job key and queue; once", async () => {
    const crontab = await readCrontab();
    expect(crontab).toContain(crontabLine("retention__sweep", "17 * * * *"));
    expect(crontab).toContain(crontabLine("queue__reap_workers", "* * * * *"));
    await expect(reconcilerEntries(`${crontab}\n${crontabLine("tuf__resign", "0 * * * *")}`)).rejects.toThrow(
      /duplicate identifiers found: 'tuf__resign'/,
    );
    expect(() =>
      defineReconciler({ name: "gadgets__bad", description: "x", schedule: "hourly", status: z.object({}), run: async () => ({}) }),
    ).toThrow(/schedule must be five crontab fields/);
  });
});

describe("activate_reconciler", () => {
  it("enqueues one activation with the crontab's job key and queue, however often it is asked", async () => {
    await clearJobs(db);
    await db.query("select gk_public.activate_reconciler('bin__reconcile')");
    await db.query("select gk_public.activate_reconciler('bin__reconcile')");
    const list = await jobs(db, "bin__reconcile");
    expect(list).toHaveLength(1);
    expect(list[0].key).toBe("bin__reconcile");
    const { rows } = await db.query("select queue_name from graphile_worker.jobs where id = $1", [list[0].id]);
    expect(rows[0].queue_name).toBe("bin__reconcile");
    await clearJobs(db);
  });

  it("refuses unknown names with the list of known ones, and the viewer", async () => {
    await expect(db.query("select gk_public.activate_reconciler('bin__reconcil')")).rejects.toMatchObject({
      code: "P0002",
      message: expect.stringMatching(/no reconciler named bin__reconcil \(known: .*bin__reconcile.*retention__sweep/),
    });
    const c = await db.pool.connect();
    try {
      await c.query("begin; set local role gk_viewer");
      await expect(c.query("select gk_public.activate_reconciler('bin__reconcile')")).rejects.toThrow(/permission denied/);
      await c.query("rollback");
    } finally {
      c.release();
    }
    expect(await jobs(db, "bin__reconcile")).toEqual([]);
  });

  it("is the activateReconciler mutation; reconcilers and their latest status are readable", async () => {
    const viewer = await api.exec("viewer", `mutation { activateReconciler(input: { task: "tuf__resign" }) { result { name } } }`);
    expect(viewer.errors?.[0].message).toMatch(/permission denied/);
    const admin = await api.exec("admin", `mutation { activateReconciler(input: { task: "tuf__resign" }) { result { name schedule } } }`);
    expect(admin.errors).toBeUndefined();
    expect(admin.data.activateReconciler.result).toEqual({ name: "tuf__resign", schedule: "*/5 * * * *" });
    const unknown = await api.exec("admin", `mutation { activateReconciler(input: { task: "nope__nope" }) { result { name } } }`);
    expect(unknown.errors?.[0].message).toMatch(/no reconciler named nope__nope/);

    await db.query("select gk_private.activation_finish(gk_private.activation_start('tuf__resign'), '{\"roles_marked\": 1}', null, $1)", [
      JSON.stringify({ roles_marked: 1, teams: ["t1"], errors: [] }),
    ]);
    const read = await api.exec("viewer", `{ reconcilerByName(name: "tuf__resign") { description lastActivation { status details } } }`);
    expect(read.errors, JSON.stringify(read.errors)).toBeUndefined();
    expect(read.data.reconcilerByName).toEqual({
      description: expect.stringMatching(/online TUF roles/),
      lastActivation: { status: "succeeded", details: { roles_marked: 1, teams: ["t1"], errors: [] } },
    });
    await clearJobs(db);
  });
});

describe("activation metrics", () => {
  it("read one latest activation per task by primary key, not the history", async () => {
    // History: 40 tasks x 50 activations.
    await db.query(`
      with s as (select gk_private.activation_start('hist__' || t) as id, t from generate_series(1, 40) t, generate_series(1, 50) g)
      select gk_private.activation_finish(s.id, '{}') from s`);
    const c = await db.pool.connect();
    let plan: any;
    try {
      await c.query("begin; set local enable_seqscan = off");
      // The function runs as its definer (the admin server's role reaches it only through it), so
      // it is not inlined into a caller's plan: explain its body.
      const {
        rows: [{ body }],
      } = await c.query("select prosrc as body from pg_proc where oid = 'gk_private.activations_latest()'::regprocedure");
      ({
        rows: [{ "QUERY PLAN": plan }],
      } = await c.query(`explain (analyze, format json) ${body}`));
      await c.query("rollback");
    } finally {
      c.release();
    }
    const nodes: any[] = [];
    const walk = (n: any) => {
      nodes.push(n);
      for (const k of n.Plans ?? []) walk(k);
    };
    walk(plan[0].Plan);
    const onActivations = nodes.filter((n) => n["Relation Name"] === "activations");
    expect(onActivations.length).toBeGreaterThan(0);
    for (const n of onActivations) {
      expect(n["Node Type"]).toMatch(/Index/);
      expect(n["Index Name"]).toBe("activations_pkey");
      // Each probe finds at most one row: the history (2,000 rows here) is never read.
      expect(n["Actual Rows"]).toBeLessThanOrEqual(1);
    }
  });

  it("gk_activations counts finished activations by status and survives pruning", async () => {
    const m = createMetrics(db.pool, [activationMetrics]);
    const before = await m.render();
    expect(before).toContain('gk_activations{task="hist__7",status="succeeded"} 50');
    await db.query("update gk_public.activations set started_at = now() - interval '1 year' where task = 'hist__7'");
    await db.query("select gk_private.retention_prune__activations(now() - interval '14 days', 100000)");
    expect((await db.query("select count(*)::int as n from gk_public.activations where task = 'hist__7'")).rows[0].n).toBe(1);
    const after = await m.render();
    expect(after).toContain('gk_activations{task="hist__7",status="succeeded"} 50');
    expect(after).toMatch(/gk_activation_last_success_timestamp_seconds\{task="hist__7"\} \d+/);
    expect(after).toContain('gk_activation_running{task="hist__7"} 0');
  });
});
