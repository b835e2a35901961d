// Sagas survive a killed worker: a real worker process is SIGKILLed in the middle of a step
// (forward, then while unwinding); another worker gets the job once the dead one's lock is
// released (graphile_worker.force_unlock_workers, what the worker-liveness sweep does for a worker
// whose heartbeat stopped) and resumes the saga from its recorded step.
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { killAndWait, startReadyProcess } from "../helpers/child.ts";
import { createTestDb } from "../helpers/db.ts";
import { sagaEvents } from "../helpers/saga.ts";
import { waitFor } from "../helpers/wait.ts";
import { DEMO_TABLES, demoParams, demoRecord, demoSaga, demoSnapshot } from "./helpers/demo-saga.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const db = await createTestDb();
await db.query(DEMO_TABLES);

function startWorker(env: Record<string, string> = {}): Promise<ChildProcess> {
  return startReadyProcess(path.join(here, "helpers/saga-worker.ts"), { DATABASE_URL: db.url, ...env });
}

/** Waits until `pid` entered `kind` of `step` of the saga, then returns the worker holding its job. */
async function heldAt(sagaId: string, step: string, kind: "action" | "undo", pid: number): Promise<string> {
  await waitFor(async () => {
    const { rows } = await db.query("select 1 from public.saga_demo_calls where saga_id = $1 and step = $2 and kind = $3 and pid = $4", [
      sagaId,
      step,
      kind,
      pid,
    ]);
    return rows.length > 0;
  }, `worker ${pid} in ${kind} ${step}`);
  const { rows } = await db.query("select locked_by from graphile_worker.jobs where key = $1", [`saga:${sagaId}`]);
  expect(rows[0].locked_by).toEqual(expect.any(String));
  return rows[0].locked_by;
}

async function finished(sagaId: string) {
  return waitFor(async () => {
    const { rows } = await db.query("select * from gk_public.sagas where id = $1 and finished_at is not null", [sagaId]);
    return rows[0];
  }, `saga ${sagaId} finished`);
}

async function calls(sagaId: string): Promise<string[]> {
  const { rows } = await db.query("select kind, step, pid from public.saga_demo_calls where saga_id = $1 order by id", [sagaId]);
  return rows.map((r) => `${r.kind} ${r.step} ${r.pid}`);
}

describe("sagas and killed workers", () => {
  it("a worker killed mid-action: the next worker runs that action again and the saga succeeds", async () => {
    const record = await demoRecord(db);
    const dying = await startWorker({ GK_TEST_SAGA_HOLD: "attach" });
    const id = await demoSaga.start(db, await demoParams(db, record));
    const deadWorker = await heldAt(id, "attach", "action", dying.pid!);
    // The attachment (the external effect) happens; the step is never recorded.
    await waitFor(async () => (await demoSnapshot(db, record)).attached.length === 1, "the attach");
    expect(await demoSnapshot(db, record)).toMatchObject({ state: "assigning", attached: ["node-a"] });
    await killAndWait(dying);
    await db.query("select graphile_worker.force_unlock_workers(array[$1])", [deadWorker]);
    const next = await startWorker();
    const row = await finished(id);
    expect(row).toMatchObject({ state: "succeeded", error: null });
    expect(await demoSnapshot(db, record)).toEqual({ state: "live", operating_saga_id: null, node: "node-a", attached: ["node-a"] });
    // Resumed, not restarted: take and pick_node ran once, attach once per worker.
    expect(await calls(id)).toEqual([
      `action take ${dying.pid}`,
      `action pick_node ${dying.pid}`,
      `action attach ${dying.pid}`,
      `action attach ${next.pid}`,
      `action go_live ${next.pid}`,
    ]);
    expect(await sagaEvents(db, id)).toEqual(["done take", "done pick_node", "done attach", "done go_live"]);
    await killAndWait(next);
  });

  it("a worker killed while unwinding: the next worker finishes the undos and the record is requested again", async () => {
    await db.query("insert into public.saga_demo_nodes (name, refuse_attach) values ('node-times-out', true)");
    await db.query("update public.saga_demo_nodes set in_service = (name = 'node-times-out')");
    const record = await demoRecord(db, "node-times-out");
    const dying = await startWorker({ GK_TEST_SAGA_HOLD: "undo:attach" });
    const id = await demoSaga.start(db, await demoParams(db, record));
    const deadWorker = await heldAt(id, "attach", "undo", dying.pid!);
    expect((await db.query("select state, step from gk_public.sagas where id = $1", [id])).rows[0]).toEqual({
      state: "unwinding",
      step: 2,
    });
    await killAndWait(dying);
    await db.query("select graphile_worker.force_unlock_workers(array[$1])", [deadWorker]);
    const next = await startWorker();
    const row = await finished(id);
    expect(row).toMatchObject({ state: "failed", failed_step: "attach", error: "node node-times-out timed out after attaching" });
    expect(await demoSnapshot(db, record)).toEqual({ state: "requested", operating_saga_id: null, node: null, attached: [] });
    expect((await calls(id)).slice(-3)).toEqual([`undo attach ${dying.pid}`, `undo attach ${next.pid}`, `undo take ${next.pid}`]);
    // The job completes (nothing left to run, nothing reported as failed).
    await waitFor(async () => {
      const { rows } = await db.query("select count(*)::int as n from graphile_worker.jobs where key = $1", [`saga:${id}`]);
      return rows[0].n === 0;
    }, "the saga's job to complete");
    await killAndWait(next);
  });
});
