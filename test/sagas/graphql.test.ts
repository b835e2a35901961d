// Sagas are visible to operators: in progress and history through GraphQL (viewers too), in
// `groundskeeper status` and /metrics; admins (only) can have an unfinished saga driven again.
import { describe, expect, it } from "vitest";
import { sagasSection } from "../../src/sagas/status.ts";
import { createTestDb } from "../helpers/db.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { runSagaInProcess } from "../helpers/saga.ts";
import { DEMO_TABLES, demoParams, demoRecord, demoSaga } from "./helpers/demo-saga.ts";

const db = await createTestDb();
await db.query(DEMO_TABLES);
const api = await httpGraphql(db);

describe("sagas for operators", () => {
  it("lists sagas in progress and the history of each, to viewers too", async () => {
    const done = await runSagaInProcess(db, demoSaga, await demoSaga.start(db, await demoParams(db, await demoRecord(db))));
    const waiting = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    const res = await api.exec(
      "viewer",
      `{ sagasInProgress { nodes { rowId name state steps step } }
         allSagaSummaries { nodes { name state sagas undoFailing } }
         sagaByRowId(rowId: "${done.id}") { state sagaEventsBySagaId { nodes { event stepName } } } }`,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data.sagasInProgress.nodes).toEqual([
      { rowId: waiting, name: "demo__attach_record", state: "running", steps: ["take", "pick_node", "attach", "go_live"], step: 0 },
    ]);
    expect(res.data.allSagaSummaries.nodes).toEqual([{ name: "demo__attach_record", state: "running", sagas: 1, undoFailing: 0 }]);
    expect(res.data.sagaByRowId.state).toBe("succeeded");
    expect(res.data.sagaByRowId.sagaEventsBySagaId.nodes.map((e: any) => `${e.event} ${e.stepName}`)).toEqual([
      "done take",
      "done pick_node",
      "done attach",
      "done go_live",
    ]);
  });

  it("retrySaga: an admin has an unfinished saga's job enqueued again; viewers may not; finished ones are refused", async () => {
    const id = await demoSaga.start(db, await demoParams(db, await demoRecord(db)));
    await db.query("select graphile_worker.remove_job($1)", [`saga:${id}`]); // as if its job had given up
    const job = async () =>
      (await db.query("select count(*)::int as n from graphile_worker.jobs where key = $1", [`saga:${id}`])).rows[0].n;
    const denied = await api.exec("viewer", `mutation($id: UUID!) { retrySaga(input: { id: $id }) { result } }`, { id });
    expect(denied.errors?.[0].message).toMatch(/permission denied/);
    expect(await job()).toBe(0);
    const ok = await api.exec("admin", `mutation($id: UUID!) { retrySaga(input: { id: $id }) { result } }`, { id });
    expect(ok.errors).toBeUndefined();
    expect(await job()).toBe(1);
    await runSagaInProcess(db, demoSaga, id);
    const finished = await api.exec("admin", `mutation($id: UUID!) { retrySaga(input: { id: $id }) { result } }`, { id });
    expect(finished.errors?.[0].message).toMatch(/no unfinished saga/);
    const mutations = await api.exec("admin", `{ __type(name: "Mutation") { fields { name } } }`);
    expect(mutations.data.__type.fields.map((f: any) => f.name).filter((n: string) => /saga/i.test(n))).toEqual(["retrySaga"]);
  });

  it("status and /metrics show what is in progress, and failing undos", async () => {
    await db.query("insert into public.saga_demo_nodes (name) values ('node-down') on conflict do nothing");
    await db.query("update public.saga_demo_nodes set in_service = (name = 'node-down'), detach_failures = (name = 'node-down')::int");
    const record = await demoRecord(db, "node-down");
    const id = await demoSaga.start(db, await demoParams(db, record));
    await expect(runSagaInProcess(db, demoSaga, id, { failAfter: "attach" })).rejects.toThrow(/undo of attach failed/);
    const data = await sagasSection.collect(db.pool);
    expect(data.summary).toContainEqual(
      expect.objectContaining({ name: "demo__attach_record", state: "unwinding", sagas: 1, undo_failing: 1 }),
    );
    expect(data.oldest).toContainEqual(
      expect.objectContaining({ id, state: "unwinding", step_name: "attach", error: "node node-down unreachable" }),
    );
    expect(sagasSection.render(data)).toMatch(/demo__attach_record\s+unwinding\s+1/);
    const metrics = await (await fetch(`${api.url}/metrics`, { headers: { Authorization: `Bearer ${api.tokens.admin}` } })).text();
    expect(metrics).toMatch(/gk_sagas_in_progress\{saga="demo__attach_record",state="unwinding"\} 1/);
    expect(metrics).toMatch(/gk_sagas_undo_failing\{saga="demo__attach_record"\} 1/);
    await db.query("update public.saga_demo_nodes set in_service = (name = 'node-a')");
  });
});
