// Sagas (after omicron's, on steno): an operation of several steps with external effects, each
// step an action and its undo. Progress lives in gk_public.sagas (sql/040_sagas.sql) and a
// graphile-worker job drives the saga (task = the saga's name, payload { saga_id }), so when a
// worker is killed mid-saga the next worker to get the job resumes it where it was recorded:
// it runs the unrecorded action again (actions are idempotent) or goes on unwinding.
//
// Rules a saga's steps follow (test/helpers/saga.ts checks them on every saga):
// - an action is idempotent: run twice, it has the effect of once and returns the same output;
// - an action failing unwinds the saga: the undo of the failing step runs first (so an undo must
//   be safe whether its action ran, ran partly or not at all), then the undos of the steps
//   before it, last to first; an undo that fails is retried (the job's backoff) until it succeeds;
// - a saga that takes a row does so with a generation guard (the first step's conditional
//   transition), so a duplicate start fails at its first step and unwinds, changing nothing.
// One runner at a time per saga: a session advisory lock on the connection that drives it,
// released by PostgreSQL when that connection dies with its worker.
//
// Batches: startMany gives one job a batch of sagas, and runSagas drives them a step at a time
// for all of them — a step's actionMany (one set-based statement, or parallel external calls)
// and one statement recording every outcome — so a reconciler starting thousands of sagas costs
// a few statements per batch, not a dozen per saga. Each saga still has its own row, lock,
// outputs and undo: one failing unwinds alone while the others go on.
import type { JobHelpers } from "graphile-worker";
import type pg from "pg";
import type { Logger } from "pino";
import { z } from "zod";
import { transaction } from "../db/pool.ts";
import { errorMessage } from "../lib/errors.ts";
import type { Services } from "../services.ts";
import { defineTask, type TaskFactory } from "./define-task.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A pool, a client or anything with pg's query(sql, params). */
interface Queryable {
  query<R extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface SagaContext<P> {
  readonly sagaId: string;
  readonly params: P;
  /** What an earlier step's action returned; throws when that step has not completed. */
  output<T = Json>(step: string): T;
  /** The connection that drives the saga (it holds the saga's lock): one statement at a time. */
  readonly db: pg.ClientBase;
  /** Several statements atomically on `db`. */
  tx<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T>;
  readonly services: Services;
  readonly log: Logger;
}

export interface SagaStep<P> {
  /** Unique within the saga; outputs are kept under it. */
  name: string;
  /** Performs the step's effect, idempotently; what it returns (JSON, ≤ 64 KiB) later steps read. */
  action?(ctx: SagaContext<P>): Promise<Json | void>;
  /**
   * The same for many sagas at once (runSagas), with the same rules per saga: each one's output,
   * or an Error for each whose action failed (it unwinds, the others go on); throwing fails them
   * all. A step has action or actionMany (or both); without action, one saga runs a batch of one.
   */
  actionMany?(ctxs: readonly SagaContext<P>[]): Promise<(Json | void | Error)[]>;
  /** Undoes the effect if there is one; a no-op when the action never took effect. */
  undo?(ctx: SagaContext<P>): Promise<void>;
  /**
   * Record this step's completion together with the next step's outcome (one update of the
   * saga's row for both, not one each). A runner that dies in between has recorded neither, so
   * the next one runs this action again: for steps whose action is cheap to replay.
   */
  recordWithNext?: boolean;
}

export interface SagaDefinition<S extends z.ZodType> {
  /** The task identifier that drives it: tasks/<name>.ts exports `saga.task`. */
  name: string;
  /** Validated when the saga starts and whenever a worker picks it up. */
  params: S;
  steps: readonly SagaStep<z.infer<S>>[];
  /**
   * Record a `done` event for every completed step (default true). Without, saga_events holds
   * only what went wrong (failed, undone, undo_failed); progress is in the row (step, outputs).
   */
  doneEvents?: boolean;
}

export type SagaState = "running" | "unwinding" | "succeeded" | "failed";

export interface SagaRow {
  id: string;
  name: string;
  params: Record<string, Json>;
  steps: string[];
  state: SagaState;
  step: number;
  outputs: Record<string, Json>;
  failed_step: string | null;
  error: string | null;
  undo_error: string | null;
  undo_attempts: number;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

/** Test hooks of runSaga (used by test/helpers/saga.ts, never in production). */
export interface SagaHooks {
  /** Run every action and every undo this many times in a row (2 checks idempotence). */
  repeat?: number;
  /** Fail the saga right after this step's action completed, as if it had thrown then. */
  failAfter?: string;
}

export interface RunOptions {
  services: Services;
  hooks?: SagaHooks;
}

export interface Saga<S extends z.ZodType> extends SagaDefinition<S> {
  /** Starts the saga in the caller's transaction (if any) and enqueues its job; returns its id. */
  start(db: Queryable, params: z.input<S>): Promise<string>;
  /**
   * Starts one saga per params in one statement (a reconciler starting many), one job per
   * `batch` of them (default 25, at most MAX_BATCH); ids in order.
   */
  startMany(db: Queryable, params: readonly z.input<S>[], opts?: { batch?: number }): Promise<string[]>;
  /** Drives the saga on `client` until it has succeeded or failed (the job does this); see runSaga. */
  run(client: pg.ClientBase, sagaId: string, opts: RunOptions): Promise<SagaRow | null>;
  /** Drives a batch of sagas on `client` (a batch job does this); see runSagas. */
  runMany(client: pg.ClientBase, sagaIds: readonly string[], opts: RunOptions): Promise<SagaRow[]>;
  /** The graphile-worker task: tasks/<name>.ts is `export default saga.task;`. */
  task: TaskFactory;
}

const NAME = /^[a-z][a-z0-9_]{0,40}__[a-z][a-z0-9_]{0,40}$/;
const MAX_STEPS = 64;
const MAX_OUTPUT_BYTES = 65_536;
const LOCK_CLASS = 4_711_0040;
/** The most sagas one job drives. */
export const MAX_BATCH = 100;

export class InjectedSagaFailure extends Error {
  override name = "InjectedSagaFailure";
}

export class SagaBusyError extends Error {
  override name = "SagaBusyError";
}

export function defineSaga<S extends z.ZodType>(def: SagaDefinition<S>): Saga<S> {
  if (!NAME.test(def.name)) throw new Error(`saga name ${def.name} is not a task identifier <key>__<verb>`);
  const names = def.steps.map((s) => s.name);
  if (names.length === 0 || names.length > MAX_STEPS) throw new Error(`saga ${def.name}: 1 to ${MAX_STEPS} steps`);
  if (new Set(names).size !== names.length) throw new Error(`saga ${def.name}: step names must be unique`);
  for (const st of def.steps) if (!st.action && !st.actionMany) throw new Error(`saga ${def.name}: step ${st.name} has no action`);
  const saga: Saga<S> = {
    ...def,
    async start(db, params) {
      const parsed = def.params.parse(params);
      const { rows } = await db.query<{ id: string }>("select gk_private.saga_start($1, $2, $3) as id", [
        def.name,
        names,
        JSON.stringify(parsed),
      ]);
      return rows[0].id;
    },
    async startMany(db, params, opts = {}) {
      if (params.length === 0) return [];
      const batch = Math.min(Math.max(1, opts.batch ?? 25), MAX_BATCH);
      const parsed = params.map((p) => JSON.stringify(def.params.parse(p)));
      const { rows } = await db.query<{ id: string }>("select id from gk_private.saga_start_many($1, $2, $3::jsonb[], $4)", [
        def.name,
        names,
        parsed,
        batch,
      ]);
      return rows.map((r) => r.id);
    },
    run: (client, sagaId, opts) => runSaga(client, saga, sagaId, opts),
    runMany: (client, sagaIds, opts) => runSagas(client, saga, sagaIds, opts),
    task: defineTask({
      // One saga (saga_start, retries, redispatch: job key saga:<id>) or a batch (startMany).
      payload: z.union([
        z.object({ saga_id: z.uuid() }).strict(),
        z.object({ saga_ids: z.array(z.uuid()).min(1).max(MAX_BATCH) }).strict(),
      ]),
      run: (p, { services, helpers }) => drive(helpers, saga, "saga_id" in p ? [p.saga_id] : p.saga_ids, services),
    }),
  };
  return saga;
}

async function drive(helpers: JobHelpers, saga: Saga<z.ZodType>, sagaIds: string[], services: Services): Promise<void> {
  await helpers.withPgClient((c) => runSagas(c, saga, sagaIds, { services }));
}

/**
 * Runs the saga's next steps (or undos) until it has finished; returns its final row, or null
 * when it no longer exists (pruned). An undo that fails is recorded and thrown, and so is
 * finding the saga held by another runner: the job fails and graphile-worker retries it.
 */
export async function runSaga<S extends z.ZodType>(
  client: pg.ClientBase,
  saga: Saga<S>,
  sagaId: string,
  opts: RunOptions,
): Promise<SagaRow | null> {
  const rows = await runSagas(client, saga, [sagaId], opts);
  return rows[0] ?? null;
}

/**
 * Drives every saga of `sagaIds` until each has succeeded or failed, a step at a time for all of
 * them: the sagas at the same step run its actionMany together (or its action one after the
 * other) and one statement records every outcome; unwinding sagas undo one by one. Returns the
 * final rows of those that still exist. Sagas held by another runner are left to it, and a saga
 * whose undo fails stops there (recorded); either makes this throw once the others are done, so
 * the job is retried for them.
 */
export async function runSagas<S extends z.ZodType>(
  client: pg.ClientBase,
  saga: Saga<S>,
  sagaIds: readonly string[],
  opts: RunOptions,
): Promise<SagaRow[]> {
  const ids = sagaIds.map((id) => id.toLowerCase());
  const { lockedIds, rows: lockedRows } = await lockAndLoad(client, ids);
  try {
    // In the order given (a batch's sagas meet their records in that order, whatever order the
    // rows come back in: a duplicate started after its original loses to it).
    const loaded = new Map(lockedRows.map((r) => [r.id, r]));
    const current = new Map(lockedIds.flatMap((id) => (loaded.has(id) ? [[id, loaded.get(id)!] as const] : [])));
    // A finished saga needs no definition (one of another release failed for good: its job ends).
    const open = [...current.values()].filter((r) => !r.finished_at);
    for (const row of open) checkDefinition(saga, row);
    const params = new Map(open.map((r) => [r.id, saga.params.parse(r.params) as z.infer<S>]));
    const log = opts.services.log.child({ saga: saga.name });
    const undoFailures: Error[] = [];
    const stopped = new Set<string>();
    // Steps completed but not recorded yet (recordWithNext), per saga: recorded at the next outcome.
    const unrecorded = new Map<string, Unrecorded>();
    for (;;) {
      const open = [...current.values()].filter((r) => (r.state === "running" || r.state === "unwinding") && !stopped.has(r.id));
      if (open.length === 0) break;
      const first = open[0]!;
      const group = open.filter((r) => r.state === first.state && r.step === first.step);
      const step: SagaStep<z.infer<S>> = saga.steps[first.step];
      const ctxs = group.map((r) => context(client, r, params.get(r.id)!, opts.services, log.child({ saga_id: r.id })));
      let moved: (SagaRow | null)[];
      if (first.state === "running") moved = await forward(client, saga, group, step, ctxs, unrecorded, opts.hooks);
      else {
        moved = [];
        for (const [i, r] of group.entries()) {
          try {
            moved.push(await back(client, r, step, ctxs[i]!, opts.hooks));
          } catch (e) {
            undoFailures.push(e as Error);
            stopped.add(r.id);
            moved.push(r);
          }
        }
      }
      // Nothing moved: the row was not where this runner thought; read it again.
      const stale = group.filter((_, i) => !moved[i]).map((r) => r.id);
      for (const m of moved) if (m) current.set(m.id, m);
      if (stale.length) {
        // What this runner had not recorded is run again from the row as recorded.
        for (const id of stale) unrecorded.delete(id);
        const fresh = new Map((await load(client, stale)).map((r) => [r.id, r]));
        for (const id of stale) {
          const f = fresh.get(id);
          if (f) current.set(id, f);
          else current.delete(id);
        }
      }
    }
    if (undoFailures.length) throw undoFailures[0];
    const busy = ids.filter((id) => !lockedIds.includes(id));
    // Held by another connection: a live runner, or the session of a killed worker PostgreSQL has
    // not reaped yet. Fail this attempt (graphile-worker retries it with backoff) rather than end
    // the job, so the saga always keeps a job until it has finished.
    if (busy.length) {
      throw new SagaBusyError(`saga ${busy.join(", ")} is being driven by another connection; retrying later`);
    }
    return ids.map((id) => current.get(id)).filter((r): r is SagaRow => !!r);
  } finally {
    if (lockedIds.length) {
      await client.query("select pg_advisory_unlock($1, hashtext(id)) from unnest($2::text[]) id", [LOCK_CLASS, lockedIds]).catch(() => {});
    }
  }
}

/** Runs a step's action for every saga of the group: each one's output, or the Error it failed with. */
async function actions<P>(step: SagaStep<P>, ctxs: readonly SagaContext<P>[]): Promise<(Json | Error)[]> {
  if (step.actionMany) {
    try {
      const out = await step.actionMany(ctxs);
      if (out.length !== ctxs.length) throw new Error(`actionMany of ${step.name} returned ${out.length} results for ${ctxs.length} sagas`);
      return out.map((o) => (o instanceof Error ? o : (o ?? null)));
    } catch (e) {
      return ctxs.map(() => asError(e));
    }
  }
  const out: (Json | Error)[] = [];
  for (const ctx of ctxs) {
    try {
      out.push((await step.action!(ctx)) ?? null);
    } catch (e) {
      out.push(asError(e));
    }
  }
  return out;
}

/** Completed steps of a saga not recorded yet: the step its row is recorded at, and their outputs. */
interface Unrecorded {
  step: number;
  outputs: Record<string, Json>;
}

async function forward<P>(
  client: pg.ClientBase,
  saga: Saga<z.ZodType>,
  rows: readonly SagaRow[],
  step: SagaStep<P>,
  ctxs: readonly SagaContext<P>[],
  unrecorded: Map<string, Unrecorded>,
  hooks: SagaHooks = {},
): Promise<(SagaRow | null)[]> {
  const outcomes = await actions(step, ctxs);
  for (let i = 1; i < (hooks.repeat ?? 1); i++) {
    const again = await actions(step, ctxs);
    for (const [k, o] of outcomes.entries()) {
      if (o instanceof Error) continue;
      const a = again[k];
      if (a instanceof Error || JSON.stringify(a) !== JSON.stringify(o)) {
        outcomes[k] = new Error(
          `action ${step.name} is not idempotent: returned ${JSON.stringify(o)}, then ${a instanceof Error ? a.message : JSON.stringify(a)}`,
        );
      }
    }
  }
  for (const [k, o] of outcomes.entries()) {
    if (o instanceof Error) continue;
    if (hooks.failAfter === step.name) outcomes[k] = new InjectedSagaFailure(`injected failure after ${step.name}`);
    else if (Buffer.byteLength(JSON.stringify(o)) > MAX_OUTPUT_BYTES) outcomes[k] = new Error(`output of ${step.name} exceeds 64 KiB`);
  }
  const moved = new Map<string, SagaRow>();
  const done: { r: SagaRow; from: number; outputs: Record<string, Json> }[] = [];
  for (const [k, r] of rows.entries()) {
    const o = outcomes[k]!;
    if (o instanceof Error) continue;
    const u = unrecorded.get(r.id) ?? { step: r.step, outputs: {} };
    u.outputs[step.name] = o;
    if (step.recordWithNext && r.step + 1 < r.steps.length) {
      // Recorded with the next step's outcome; later steps read its output from the row here.
      unrecorded.set(r.id, u);
      moved.set(r.id, { ...r, step: r.step + 1, outputs: { ...r.outputs, [step.name]: o } });
    } else {
      unrecorded.delete(r.id);
      done.push({ r, from: u.step, outputs: u.outputs });
    }
  }
  const failed = rows.flatMap((r, k) => (outcomes[k] instanceof Error ? [{ r, e: outcomes[k] as Error }] : []));
  for (const { r, e } of failed) ctxs[rows.indexOf(r)]!.log.warn({ step: step.name, err: errorMessage(e) }, "saga step failed; unwinding");
  // The steps completed before a failing one are recorded first, then the failure.
  const before = failed.flatMap(({ r }) => {
    const u = unrecorded.get(r.id);
    unrecorded.delete(r.id);
    return u ? [{ r, from: u.step, outputs: u.outputs }] : [];
  });
  // One statement for all that completed, one for all that failed (sql/040_sagas.sql).
  const record = async (d: typeof done) => {
    const { rows: m } = await client.query<SagaRow>(
      "select * from gk_private.saga_steps_advanced($1::uuid[], $2::int[], $3::int[], $4::jsonb[], $5)",
      [
        d.map((x) => x.r.id),
        d.map((x) => x.from),
        d.map((x) => Object.keys(x.outputs).length),
        d.map((x) => JSON.stringify(x.outputs)),
        saga.doneEvents !== false,
      ],
    );
    return m;
  };
  if (done.length) for (const r of await record(done)) moved.set(r.id, r);
  if (before.length) await record(before);
  if (failed.length) {
    const { rows: m } = await client.query<SagaRow>("select * from gk_private.saga_steps_failed($1::uuid[], $2::int[], $3::text[])", [
      failed.map((f) => f.r.id),
      failed.map((f) => f.r.step),
      failed.map((f) => errorMessage(f.e)),
    ]);
    for (const r of m) moved.set(r.id, r);
  }
  return rows.map((r) => moved.get(r.id) ?? null);
}

async function back<P>(
  client: pg.ClientBase,
  row: SagaRow,
  step: SagaStep<P>,
  ctx: SagaContext<P>,
  hooks: SagaHooks = {},
): Promise<SagaRow | null> {
  try {
    for (let i = 0; i < (hooks.repeat ?? 1); i++) await step.undo?.(ctx);
  } catch (e) {
    await record(client, "select * from gk_private.saga_undo_failed($1, $2, $3)", [row.id, row.step, errorMessage(e)]);
    throw new Error(`saga ${row.name} ${row.id}: undo of ${step.name} failed (retried): ${errorMessage(e)}`);
  }
  return record(client, "select * from gk_private.saga_step_undone($1, $2)", [row.id, row.step]);
}

/** One transition (sql/040_sagas.sql): the moved row, or null when the saga was not at that step. */
async function record(client: pg.ClientBase, sql: string, params: unknown[]): Promise<SagaRow | null> {
  const { rows } = await client.query<SagaRow>(sql, params);
  return rows[0]?.id ? rows[0] : null;
}

/**
 * Takes the lock of each saga this connection can have and reads the rows of those it got, in one
 * round trip (a batch job starts with it). The lock comes first (a materialized CTE, once per id),
 * so no row is read for a saga another runner holds; the ids are cast before any lock is taken,
 * so a malformed one fails the call holding none.
 */
async function lockAndLoad(client: pg.ClientBase, ids: readonly string[]): Promise<{ lockedIds: string[]; rows: SagaRow[] }> {
  const { rows } = await client.query<SagaRow & { locked_id: string }>(
    `with locked as materialized (select id from unnest($2::uuid[]) id where pg_try_advisory_lock($1, hashtext(id::text)))
     select l.id::text as locked_id, s.* from locked l left join gk_public.sagas s on s.id = l.id`,
    [LOCK_CLASS, ids],
  );
  return {
    lockedIds: rows.map((r) => r.locked_id),
    rows: rows.flatMap(({ locked_id: _, ...row }) => (row.id ? [row as SagaRow] : [])),
  };
}

async function load(client: pg.ClientBase, sagaIds: readonly string[]): Promise<SagaRow[]> {
  if (sagaIds.length === 0) return [];
  const { rows } = await client.query<SagaRow>("select * from gk_public.sagas where id = any($1::uuid[])", [sagaIds]);
  return rows;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function checkDefinition(saga: Saga<z.ZodType>, row: SagaRow): void {
  const names = saga.steps.map((s) => s.name);
  if (row.name !== saga.name || row.steps.join("\n") !== names.join("\n")) {
    // A worker of another release: leave the saga to one whose definition matches.
    throw new Error(`saga ${row.id} (${row.name}: ${row.steps.join(", ")}) does not match this worker's ${saga.name}: ${names.join(", ")}`);
  }
}

function context<P>(client: pg.ClientBase, row: SagaRow, params: P, services: Services, log: Logger): SagaContext<P> {
  return {
    sagaId: row.id,
    params,
    output<T>(step: string): T {
      if (!(step in row.outputs)) throw new Error(`saga ${row.name}: step ${step} has no output (it has not completed)`);
      return row.outputs[step] as T;
    },
    db: client,
    tx: (fn) => transaction(client, fn),
    services,
    log,
  };
}
