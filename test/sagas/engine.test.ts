// The saga engine (src/worker/saga.ts, sql/040_sagas.sql) on the demo saga: every action twice,
// a failure after each step unwinds to the starting state, a duplicate start unwinds at its
// first step, a failing undo is retried, and a worker with another definition refuses to drive.
import { describe, expect, it } from "vitest";
import { listJobs } from "../../src/worker/queue.ts";
import { defineSaga } from "../../src/worker/saga.ts";
import { createTestDb } from "../helpers/db.ts";
import { actionFailureCanUnwind, actionsSucceedIdempotently, runSagaInProcess, runSagasInProcess, sagaEvents } from "../helpers/saga.ts";
import { DEMO_TABLES, demoParams, demoRecord, demoSaga, demoSnapshot } from "./helpers/demo-saga.ts";

const db = await createTestDb();
await db.query(DEMO_TABLES);

const demoCase = {
  setup: async () => demoParams(db, await demoRecord(db)),
  snapshot: (p: { record_id: string }) => demoSnapshot(db, p.record_id),
  verify: async (p: { record_id: string }) => {
    expect(await demoSnapshot(db, p.record_id)).toEqual({ state: "live", operating_saga_id: null, node: "node-a", attached: ["node-a"] });
  },
};

describe("sagas", () => {
  it("every action run twice: the saga still succeeds, with the effect of once", async () => {
    const row = await actionsSucceedIdempotently(db, demoSaga, demoCase);
    expect(row.outputs).toEqual({ take: null, pick_node: { node: "node-a" }, attach: null, go_live: null });
  });

  it("a failure after any step unwinds it and every step before it, restoring the starting state", async () => {
    await actionFailureCanUnwind(db, demoSaga, demoCase);
  });

  it("a duplicate start (same generation) fails at its first step and unwinds without touching the winner", async () => {
    const record = await demoRecord(db);
    const params = await demoParams(db, record);
    const [a, b] = [await demoSaga.start(db, params), await demoSaga.start(db, params)];
    const runs = await Promise.all([runSagaInProcess(db, demoSaga, a), runSagaInProcess(db, demoSaga, b)]);
    const states = runs.map((r) => r.state).sort();
    expect(states).toEqual(["failed", "succeeded"]);
    const loser = runs.find((r) => r.state === "failed")!;
    expect(loser).toMatchObject({ failed_step: "take", error: expect.stringMatching(/conflict/) });
    expect(await sagaEvents(db, loser.id)).toEqual(["failed take", "undone take"]);
    expect(await demoSnapshot(db, record)).toEqual({ state: "live", operating_saga_id: null, node: "node-a", attached: ["node-a"] });
  });

  it("the generation guard: a saga started from a stale read cannot take a record another saga returned", async () => {
    const record = await demoRecord(db);
    const params = await demoParams(db, record);
    // Two starts from the same read; the first unwinds (its record is requested again, generation 1).
    const first = await demoSaga.start(db, params);
    const second = await demoSaga.start(db, params);
    expect(await runSagaInProcess(db, demoSaga, first, { failAfter: "go_live" })).toMatchObject({ state: "failed" });
    expect(await demoSnapshot(db, record)).toMatchObject({ state: "requested" });
    const stale = await runSagaInProcess(db, demoSaga, second);
    expect(stale).toMatchObject({ state: "failed", failed_step: "take", error: expect.stringMatching(/generation 1/) });
    // A fresh read starts one that succeeds.
    const fresh = await runSagaInProcess(db, demoSaga, await demoSaga.start(db, await demoParams(db, record)));
    expect(fresh.state).toBe("succeeded");
  });

  it("an action failing after its effect: its own undo runs too", async () => {
    await db.query("insert into public.saga_demo_nodes (name, refuse_attach) values ('node-refuses', true)");
    const record = await demoRecord(db, "node-refuses");
    await db.query("update public.saga_demo_nodes set in_service = false where name = 'node-a'");
    try {
      const row = await runSagaInProcess(db, demoSaga, await demoSaga.start(db, await demoParams(db, record)));
      expect(row).toMatchObject({ state: "failed", failed_step: "attach", error: "node node-refuses timed out after attaching" });
      expect(await sagaEvents(db, row.id)).toEqual([
        "done take",
        "done pick_node",
        "failed attach",
        "undone attach",
        "undone pick_node",
        "undone take",
      ]);
      expect(await demoSnapshot(db, record)).toEqual({ state: "requested", operating_saga_id: null, node: null, attached: [] });
    } finally {
      await db.query("update public.saga_demo_nodes set in_service = true where name = 'node-a'");
      await db.query("update public.saga_demo_nodes set in_service = false where name = 'node-refuses'");
    }
  });

  it("a failing undo is recorded and retried until it succeeds; the saga stays unwinding meanwhile", async () => {
    await db.query("insert into public.saga_demo_nodes (name) values ('node-flaky')");
    await db.query("update public.saga_demo_nodes set in_service = (name = 'node-flaky')");
    try {
      const record = await demoRecord(db, "node-flaky");
      const id = await demoSaga.start(db, await demoParams(db, record));
      await db.query("update public.saga_demo_nodes set detach_failures = 2 where name = 'node-flaky'");
      await expect(runSagaInProcess(db, demoSaga, id, { failAfter: "go_live" })).rejects.toThrow(/undo of attach failed.*unreachable/);
      await expect(runSagaInProcess(db, demoSaga, id)).rejects.toThrow(/undo of attach failed/);
      const { rows } = await db.query("select state, step, undo_attempts, undo_error from gk_public.sagas where id = $1", [id]);
      expect(rows[0]).toEqual({ state: "unwinding", step: 2, undo_attempts: 2, undo_error: "node node-flaky unreachable" });
      const done = await runSagaInProcess(db, demoSaga, id);
      expect(done).toMatchObject({ state: "failed", undo_error: null, undo_attempts: 0 });
      expect(await demoSnapshot(db, record)).toEqual({ state: "requested", operating_saga_id: null, node: null, attached: [] });
      expect((await sagaEvents(db, id)).filter((e) => e === "undo_failed attach")).toHaveLength(2);
    } finally {
      await db.query("update public.saga_demo_nodes set in_service = (name = 'node-a')");
    }
  });

  it("resumes where it was recorded: a completed step is not run again", async () => {
    const record = await demoRecord(db);
    const id = await demoSaga.start(db, await demoParams(db, record));
    // As if a worker died after recording take and pick_node.
    await db.query("select gk_private.saga_step_done($1, 0, 'null')", [id]);
    await db.query(`select gk_private.saga_step_done($1, 1, '{"node": "node-a"}')`, [id]);
    await db.query("update public.saga_demo_records set state = 'assigning', operating_saga_id = $2, generation = 1 where id = $1", [
      record,
      id,
    ]);
    const row = await runSagaInProcess(db, demoSaga, id);
    expect(row.state).toBe("succeeded");
    const { rows } = await db.query("select step from public.saga_demo_calls where saga_id = $1 order by id", [id]);
    expect(rows.map((r) => r.step)).toEqual(["attach", "go_live"]);
  });

  it("refuses bad params, and a worker whose definition differs does not drive the saga", async () => {
    await expect(demoSaga.start(db, { record_id: "nope", generation: 1 })).rejects.toThrow(/record_id/);
    await expect(demoSaga.start(db, { record_id: crypto.randomUUID(), generation: 0 } as never)).rejects.toThrow(/generation/);
    const other = defineSaga({
      name: demoSaga.name,
      params: demoSaga.params,
      steps: demoSaga.steps.filter((s) => s.name !== "pick_node"),
    });
    const id = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    await expect(runSagaInProcess(db, other, id)).rejects.toThrow(/does not match this worker's/);
    expect((await db.query("select state, step from gk_public.sagas where id = $1", [id])).rows[0]).toEqual({ state: "running", step: 0 });
    expect(() => defineSaga({ name: "Bad Name", params: demoSaga.params, steps: demoSaga.steps })).toThrow(/task identifier/);
    expect(() => defineSaga({ name: "demo__dup", params: demoSaga.params, steps: [demoSaga.steps[0], demoSaga.steps[0]] })).toThrow(
      /unique/,
    );
  });

  it("starting a saga enqueues its job (key saga:<id>) in the caller's transaction", async () => {
    const record = await demoRecord(db);
    const client = await db.pool.connect();
    let id = "";
    try {
      await client.query("begin");
      id = await demoSaga.start(client, await demoParams(client, record));
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect((await db.query("select count(*)::int as n from gk_public.sagas where id = $1", [id])).rows[0].n).toBe(0);
    const committed = await demoSaga.start(db, await demoParams(db, record));
    const { rows } = await db.query("select task_identifier from graphile_worker.jobs where key = $1", [`saga:${committed}`]);
    expect(rows).toEqual([{ task_identifier: "demo__attach_record" }]);
  });

  it("one runner at a time: a saga held by another connection is left to it (the attempt fails and is retried)", async () => {
    const id = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    const holder = await db.pool.connect();
    try {
      await holder.query("select pg_advisory_lock(47110040, hashtext($1::text))", [id]);
      await expect(runSagaInProcess(db, demoSaga, id)).rejects.toThrow(/being driven by another connection/);
      expect((await db.query("select state, step from gk_public.sagas where id = $1", [id])).rows[0]).toEqual({
        state: "running",
        step: 0,
      });
    } finally {
      await holder.query("select pg_advisory_unlock_all()");
      holder.release();
    }
    expect((await runSagaInProcess(db, demoSaga, id)).state).toBe("succeeded");
  });

  it("a batch in one job: each saga keeps its properties and its fate; one held elsewhere is left to it and the run retries", async () => {
    await actionsSucceedIdempotently(db, demoSaga, demoCase, { batch: 3 });
    await actionFailureCanUnwind(db, demoSaga, demoCase, { batch: 2 });
    const params = [];
    for (let i = 0; i < 3; i++) params.push(await demoParams(db, await demoRecord(db)));
    const ids = [];
    for (const p of params) ids.push(await demoSaga.start(db, p));
    const dup = await demoSaga.start(db, params[0]!); // the same generation: it must lose alone
    const held = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    const holder = await db.pool.connect();
    try {
      await holder.query("select pg_advisory_lock(47110040, hashtext($1::text))", [held]);
      await expect(runSagasInProcess(db, demoSaga, [...ids, dup, held])).rejects.toThrow(/being driven by another connection/);
    } finally {
      await holder.query("select pg_advisory_unlock_all()");
      holder.release();
    }
    const { rows } = await db.query("select id, state, failed_step from gk_public.sagas where id = any($1)", [[...ids, dup, held]]);
    const by = new Map(rows.map((r) => [r.id, r]));
    for (const id of ids) expect(by.get(id)).toMatchObject({ state: "succeeded" });
    expect(by.get(dup)).toMatchObject({ state: "failed", failed_step: "take" });
    expect(by.get(held)).toMatchObject({ state: "running" });
    // The retry drives what is left; the finished ones are not run again.
    const calls = (await db.query("select count(*)::int as n from public.saga_demo_calls")).rows[0].n;
    const again = await runSagasInProcess(db, demoSaga, [...ids, held]);
    expect(again.map((r) => r.state)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    expect((await db.query("select count(*)::int as n from public.saga_demo_calls")).rows[0].n).toBe(calls + 4);
  });

  it("steps recorded with the next and no done events: one row update per run, the same properties; what was not recorded runs again", async () => {
    let seen: unknown;
    const deferred = defineSaga({
      ...demoSaga,
      doneEvents: false,
      steps: demoSaga.steps.map((st) =>
        st.name === "go_live"
          ? st
          : st.name === "attach"
            ? {
                ...st,
                recordWithNext: true,
                async action(ctx: Parameters<NonNullable<typeof st.action>>[0]) {
                  // What another session sees while the saga attaches: nothing recorded yet.
                  seen = (await db.query("select step, outputs from gk_public.sagas where id = $1", [ctx.sagaId])).rows[0];
                  return st.action!(ctx);
                },
              }
            : { ...st, recordWithNext: true },
      ),
    });
    await actionsSucceedIdempotently(db, deferred, demoCase);
    await actionFailureCanUnwind(db, deferred, demoCase, { batch: 2 });
    await db.query(`
      create table public.saga_updates (saga_id uuid not null);
      create function public.tg_count_saga_updates() returns trigger language plpgsql as
        $f$ begin insert into public.saga_updates values (new.id); return null; end $f$;
      create trigger count_updates after update on gk_public.sagas for each row execute function public.tg_count_saga_updates();`);
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await deferred.start(db, await demoParams(db, await demoRecord(db))));
      const rows = await runSagasInProcess(db, deferred, ids);
      expect(rows.map((r) => r.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
      expect(rows[0]!.outputs).toEqual({ take: null, pick_node: { node: "node-a" }, attach: null, go_live: null });
      expect(seen).toEqual({ step: 0, outputs: {} });
      const { rows: updates } = await db.query("select saga_id, count(*)::int as n from public.saga_updates group by 1");
      expect(updates.map((u) => u.n)).toEqual([1, 1, 1]);
      expect((await db.query("select count(*)::int as n from gk_public.saga_events where saga_id = any($1)", [ids])).rows[0].n).toBe(0);
    } finally {
      await db.query(
        "drop trigger count_updates on gk_public.sagas; drop table public.saga_updates; drop function public.tg_count_saga_updates()",
      );
    }
    // A runner that died after take and pick_node took effect, before anything was recorded:
    // the next one runs them again (idempotent) and goes on.
    const record = await demoRecord(db);
    const id = await deferred.start(db, await demoParams(db, record));
    await db.query("update public.saga_demo_records set state = 'assigning', operating_saga_id = $2, generation = 1 where id = $1", [
      record,
      id,
    ]);
    expect((await runSagaInProcess(db, deferred, id)).state).toBe("succeeded");
    const { rows: calls } = await db.query("select step from public.saga_demo_calls where saga_id = $1 order by id", [id]);
    expect(calls.map((r) => r.step)).toEqual(["take", "pick_node", "attach", "go_live"]);
  });

  it("recording a batch's steps fires no trigger on sagas; a retry still enqueues the saga's job", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await demoSaga.start(db, await demoParams(db, await demoRecord(db))));
    const arr = `array[${ids.map((id) => `'${id}'`).join(",")}]::uuid[]`;
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      // The function's statement, run as it runs (EXPLAIN of the call would not show its triggers).
      const body = (await client.query("select prosrc from pg_proc where proname = 'saga_steps_advanced'")).rows[0].prosrc as string;
      const sql = body
        .replaceAll("saga_steps_advanced.ids", arr)
        .replaceAll("saga_steps_advanced.steps", "array[0,0,0]")
        .replaceAll("saga_steps_advanced.counts", "array[1,1,1]")
        .replaceAll("saga_steps_advanced.outputs", `array_fill('{"take":null}'::jsonb, array[3])`)
        .replaceAll("done_events", "true");
      const { rows } = await client.query(`explain (analyze, format json) ${sql}`);
      await client.query("rollback");
      expect(rows[0]["QUERY PLAN"][0].Plan["Actual Rows"]).toBe(3);
      expect(rows[0]["QUERY PLAN"][0].Triggers.map((t: { "Trigger Name": string }) => t["Trigger Name"])).not.toContain(
        "_500_enqueue_retry",
      );
    } finally {
      client.release();
    }
    await db.query("select graphile_worker.remove_job('saga:' || id) from unnest($1::text[]) id", [ids]);
    await db.query("select gk_public.retry_saga($1)", [ids[0]]);
    const { rows: keyed } = await db.query("select key from graphile_worker.jobs where key = any($1)", [ids.map((id) => `saga:${id}`)]);
    expect(keyed).toEqual([{ key: `saga:${ids[0]}` }]);
  });

  it("startMany: one job per batch, sagas in order", async () => {
    const params = [];
    for (let i = 0; i < 5; i++) params.push(await demoParams(db, await demoRecord(db)));
    const ids = await demoSaga.startMany(db, params, { batch: 2 });
    const { rows } = await db.query("select id, params from gk_public.sagas where id = any($1)", [ids]);
    expect(ids.map((id) => rows.find((r) => r.id === id)!.params.record_id)).toEqual(params.map((p) => p.record_id));
    const batches = (await listJobs(db, "demo__attach_record")).flatMap((j) =>
      ((j.payload as { saga_ids?: string[] }).saga_ids ?? []).length ? [(j.payload as { saga_ids: string[] }).saga_ids] : [],
    );
    expect(batches).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
  });

  it("retention prunes finished sagas with their events, never one in progress", async () => {
    const running = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    const { rows } = await db.query("select gk_private.retention_prune__sagas(now() + interval '1 minute', 10000) as n");
    expect(Number(rows[0].n)).toBeGreaterThan(0);
    const left = await db.query("select id from gk_public.sagas where finished_at is not null or id = $1", [running]);
    expect(left.rows).toEqual([{ id: running }]);
    expect((await db.query("select count(*)::int as n from gk_public.saga_events")).rows[0].n).toBe(0);
    // Registered: the retention sweep finds the kind's function.
    const { rows: fn } = await db.query("select gk_private.retention_prune_function('sagas') is not null as ok");
    expect(fn[0].ok).toBe(true);
    expect((await db.query("select kind from gk_public.retention_policies where kind = 'sagas'")).rows).toHaveLength(1);
  });
});
