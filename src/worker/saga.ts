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
  action(ctx: SagaContext<P>): Promise<Json | void>;
  /** Undoes the effect if there is one; a no-op when the action never took effect. */
  undo?(ctx: SagaContext<P>): Promise<void>;
}

export interface SagaDefinition<S extends z.ZodType> {
  /** The task identifier that drives it: tasks/<name>.ts exports `saga.task`. */
  name: string;
  /** Validated when the saga starts and whenever a worker picks it up. */
  params: S;
  steps: readonly SagaStep<z.infer<S>>[];
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
  /** Starts one saga per params in one statement (a reconciler starting many); ids in order. */
  startMany(db: Queryable, params: readonly z.input<S>[]): Promise<string[]>;
  /** Drives the saga on `client` until it has succeeded or failed (the job does this); see runSaga. */
  run(client: pg.ClientBase, sagaId: string, opts: RunOptions): Promise<SagaRow | null>;
  /** The graphile-worker task: tasks/<name>.ts is `export default saga.task;`. */
  task: TaskFactory;
}

const NAME = /^[a-z][a-z0-9_]{0,40}__[a-z][a-z0-9_]{0,40}$/;
const MAX_STEPS = 64;
const MAX_OUTPUT_BYTES = 65_536;
const LOCK_CLASS = 4_711_0040;

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
    async startMany(db, params) {
      if (params.length === 0) return [];
      const parsed = params.map((p) => JSON.stringify(def.params.parse(p)));
      const { rows } = await db.query<{ id: string }>(
        "select gk_private.saga_start($1, $2, p) as id from unnest($3::jsonb[]) with ordinality x(p, o) order by o",
        [def.name, names, parsed],
      );
      return rows.map((r) => r.id);
    },
    run: (client, sagaId, opts) => runSaga(client, saga, sagaId, opts),
    task: defineTask({
      payload: z.object({ saga_id: z.uuid() }).strict(),
      run: ({ saga_id }, { services, helpers }) => drive(helpers, saga, saga_id, services),
    }),
  };
  return saga;
}

async function drive(helpers: JobHelpers, saga: Saga<z.ZodType>, sagaId: string, services: Services): Promise<void> {
  await helpers.withPgClient((c) => runSaga(c, saga, sagaId, { services }));
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
  const { rows: lock } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1, hashtext($2::text)) as ok", [
    LOCK_CLASS,
    sagaId,
  ]);
  // Held by another connection: a live runner, or the session of a killed worker PostgreSQL has
  // not reaped yet. Fail this attempt (graphile-worker retries it with backoff) rather than end
  // the job, so the saga always keeps a job until it has finished.
  if (!lock[0].ok) throw new SagaBusyError(`saga ${sagaId} is being driven by another connection; retrying later`);
  try {
    let row: SagaRow | null = await load(client, sagaId);
    if (!row) return null;
    checkDefinition(saga, row);
    const params = saga.params.parse(row.params) as z.infer<S>;
    const log = opts.services.log.child({ saga: saga.name, saga_id: sagaId });
    while (row.state === "running" || row.state === "unwinding") {
      const ctx: SagaContext<z.infer<S>> = context(client, row, params, opts.services, log);
      const step: SagaStep<z.infer<S>> = saga.steps[row.step];
      const moved: SagaRow | null =
        row.state === "running" ? await forward(client, row, step, ctx, opts.hooks) : await back(client, row, step, ctx, opts.hooks);
      // Nothing moved: the row was not where this runner thought; read it again.
      row = moved ?? (await load(client, sagaId));
      if (!row) return null;
    }
    return row;
  } finally {
    await client.query("select pg_advisory_unlock($1, hashtext($2::text))", [LOCK_CLASS, sagaId]).catch(() => {});
  }
}

async function forward<P>(
  client: pg.ClientBase,
  row: SagaRow,
  step: SagaStep<P>,
  ctx: SagaContext<P>,
  hooks: SagaHooks = {},
): Promise<SagaRow | null> {
  let output: Json;
  try {
    output = (await step.action(ctx)) ?? null;
    for (let i = 1; i < (hooks.repeat ?? 1); i++) {
      const again = (await step.action(ctx)) ?? null;
      if (JSON.stringify(again) !== JSON.stringify(output)) {
        throw new Error(`action ${step.name} is not idempotent: returned ${JSON.stringify(output)}, then ${JSON.stringify(again)}`);
      }
    }
    if (hooks.failAfter === step.name) throw new InjectedSagaFailure(`injected failure after ${step.name}`);
    if (Buffer.byteLength(JSON.stringify(output)) > MAX_OUTPUT_BYTES) throw new Error(`output of ${step.name} exceeds 64 KiB`);
  } catch (e) {
    ctx.log.warn({ step: step.name, err: errorMessage(e) }, "saga step failed; unwinding");
    return record(client, "select * from gk_private.saga_step_failed($1, $2, $3)", [row.id, row.step, errorMessage(e)]);
  }
  return record(client, "select * from gk_private.saga_step_done($1, $2, $3)", [row.id, row.step, JSON.stringify(output)]);
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

async function load(client: pg.ClientBase, sagaId: string): Promise<SagaRow | null> {
  const { rows } = await client.query<SagaRow>("select * from gk_public.sagas where id = $1", [sagaId]);
  return rows[0] ?? null;
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
