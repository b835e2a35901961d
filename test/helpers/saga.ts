// The two properties every saga must have (after omicron's sagas/test_helpers.rs), checked by
// running the saga in this process with the engine's test hooks (src/worker/saga.ts):
// - actionsSucceedIdempotently: every action runs twice in a row and the saga still succeeds;
// - actionFailureCanUnwind: for each step, a fresh saga fails right after that step's action
//   (its effect done), unwinds (every undo twice), and leaves the starting state as it was.
// With `batch: n`, n sagas are driven together as one job drives a batch (runSagas: each step's
// actionMany for all of them), and every one of them must show the property.
import { expect } from "vitest";
import type { z } from "zod";
import type { Services } from "../../src/services.ts";
import type { Saga, SagaHooks, SagaRow } from "../../src/worker/saga.ts";
import type { TestDb } from "./db.ts";
import { testServices } from "./jobs.ts";

export interface SagaCase<P> {
  /** A fresh starting state; returns the params to start the saga with. */
  setup(): Promise<P>;
  /** The state the undos must restore (leave out generation numbers: they only grow). */
  snapshot(params: P): Promise<unknown>;
  /** After a successful run: checks the end state. */
  verify?(params: P): Promise<void>;
  /** What the saga's steps use (default testServices(): no CA, no controller identity). */
  services?: Services;
}

/** Drives a saga to its end in this process (its queued job is removed: nothing else runs it). */
export async function runSagaInProcess<S extends z.ZodType>(
  db: TestDb,
  saga: Saga<S>,
  sagaId: string,
  hooks?: SagaHooks,
  services: Services = testServices(),
): Promise<SagaRow> {
  await db.query("select graphile_worker.remove_job($1)", [`saga:${sagaId}`]);
  const client = await db.pool.connect();
  try {
    const row = await saga.run(client, sagaId, { services, hooks });
    if (!row) throw new Error(`saga ${sagaId} is gone`);
    return row;
  } finally {
    client.release();
  }
}

/** Drives sagas to their end as one batch in this process (their queued jobs removed). */
export async function runSagasInProcess<S extends z.ZodType>(
  db: TestDb,
  saga: Saga<S>,
  sagaIds: string[],
  hooks?: SagaHooks,
  services: Services = testServices(),
): Promise<SagaRow[]> {
  await db.query("select graphile_worker.remove_job('saga:' || id) from unnest($1::text[]) id", [sagaIds]);
  const client = await db.pool.connect();
  try {
    const rows = await saga.runMany(client, sagaIds, { services, hooks });
    expect(rows.map((r) => r.id)).toEqual(sagaIds);
    return rows;
  } finally {
    client.release();
  }
}

export async function sagaEvents(db: TestDb, sagaId: string): Promise<string[]> {
  const { rows } = await db.query("select event, step_name from gk_public.saga_events where saga_id = $1 order by id", [sagaId]);
  return rows.map((r) => `${r.event} ${r.step_name}`);
}

export interface PropertyOptions {
  /** Drive this many sagas together as one batch (runSagas); default 1, one saga on its own. */
  batch?: number;
}

/** Fresh starting states, one after the other (setups may not be concurrent). */
async function setups<P>(c: SagaCase<P>, n: number): Promise<P[]> {
  const params: P[] = [];
  for (let i = 0; i < n; i++) params.push(await c.setup());
  return params;
}

async function drive<S extends z.ZodType>(
  db: TestDb,
  saga: Saga<S>,
  c: SagaCase<z.input<S>>,
  params: z.input<S>[],
  hooks: SagaHooks,
  batch: number,
): Promise<SagaRow[]> {
  const ids: string[] = [];
  for (const p of params) ids.push(await saga.start(db, p));
  if (batch === 1) return [await runSagaInProcess(db, saga, ids[0]!, hooks, c.services)];
  return runSagasInProcess(db, saga, ids, hooks, c.services);
}

export async function actionsSucceedIdempotently<S extends z.ZodType>(
  db: TestDb,
  saga: Saga<S>,
  c: SagaCase<z.input<S>>,
  opts: PropertyOptions = {},
): Promise<SagaRow> {
  const batch = opts.batch ?? 1;
  const params = await setups(c, batch);
  const rows = await drive(db, saga, c, params, { repeat: 2 }, batch);
  for (const [i, row] of rows.entries()) {
    expect(row, `${saga.name} with every action run twice`).toMatchObject({ state: "succeeded", error: null });
    expect(await sagaEvents(db, row.id)).toEqual(saga.doneEvents === false ? [] : saga.steps.map((s) => `done ${s.name}`));
    await c.verify?.(params[i]!);
  }
  return rows[0]!;
}

export async function actionFailureCanUnwind<S extends z.ZodType>(
  db: TestDb,
  saga: Saga<S>,
  c: SagaCase<z.input<S>>,
  opts: PropertyOptions = {},
): Promise<void> {
  const batch = opts.batch ?? 1;
  const names = saga.steps.map((s) => s.name);
  for (const [k, name] of names.entries()) {
    const params = await setups(c, batch);
    const before = [];
    for (const p of params) before.push(await c.snapshot(p));
    const rows = await drive(db, saga, c, params, { failAfter: name, repeat: 2 }, batch);
    for (const [i, row] of rows.entries()) {
      expect(row, `${saga.name} failing after ${name}`).toMatchObject({ state: "failed", failed_step: name, step: 0 });
      expect(row.error).toMatch(/injected failure/);
      expect(await sagaEvents(db, row.id), `events of ${saga.name} failing after ${name}`).toEqual([
        ...(saga.doneEvents === false ? [] : names.slice(0, k).map((n) => `done ${n}`)),
        `failed ${name}`,
        ...names
          .slice(0, k + 1)
          .reverse()
          .map((n) => `undone ${n}`),
      ]);
      expect(await c.snapshot(params[i]!), `state after ${saga.name} unwound from ${name}`).toEqual(before[i]);
    }
  }
}
