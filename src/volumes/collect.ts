// The volume collector: one activation computes everything from scratch. The database part
// (gk_private.volumes_collect: ownerless containers, failed volumes past their grace, the orphan
// mark, missing volumes past their grace) is one call; then every serving worker is visited at
// once, each under a lease on its row so two collectors never double the load on one agent:
//   destroy — take the due destroys, send them in batches with at most `parallelism` calls in
//             flight to this agent, each with a deadline; record each batch's outcome in one call;
//             mark again (a destroyed child can leave its parent an orphan) until nothing is due;
//   report  — the agent's handles, reconciled both ways in one statement (volumes_report); the
//             handles it adopts are destroyed as above.
// One hung agent costs its own loop a deadline per call and nothing else: the workers are
// independent, and an agent that answers no call of a round is left for the next activation.
import { errorMessage } from "../lib/errors.ts";
import { mapSettled } from "../lib/map-limit.ts";
import type { PeerClient } from "../peers/client.ts";
import type { DestroyResult } from "./agent-role.ts";
import type { AgentWorker, VolumeAgents } from "./agents.ts";

export type Query = <R = any>(sql: string, params?: unknown[]) => Promise<{ rows: R[] }>;

/** A pool (or graphile-worker's helpers) as a CollectDb. */
export function collectDb(pool: { query(sql: string, params?: unknown[]): Promise<{ rows: any[] }> }): CollectDb {
  return { query: (sql, params) => pool.query(sql, params) as never };
}

/**
 * The database as the collector uses it: single statements (autocommit). A worker's destroys need
 * no transaction of their own: the collector's lease on the worker's row keeps other collectors off.
 */
export interface CollectDb {
  query: Query;
}

export interface CollectOptions {
  /** Handles per destroy call. */
  batchSize: number;
  /** Workers visited at once. */
  workerConcurrency: number;
  /** Destroys per worker per activation (the rest: next activation). */
  maxDestroysPerWorker: number;
  /** Deadline of the report call (the other calls use the agents' timeout). */
  reportTimeoutMs: number;
}

export const DEFAULT_COLLECT: CollectOptions = {
  batchSize: 200,
  workerConcurrency: 16,
  maxDestroysPerWorker: 100_000,
  reportTimeoutMs: 30_000,
};

export interface CollectStatus {
  containers_removed: number;
  failed_expired: number;
  marked: number;
  missing_removed: number;
  workers: number;
  workers_busy: number;
  /** From the reports: handles adopted, destroys confirmed by absence, creations completed/failed, rows newly missing. */
  unknown: number;
  confirmed: number;
  completed: number;
  creating_failed: number;
  missing: number;
  /** Rows deleted because the agent confirmed the destroy. */
  destroyed: number;
  destroy_failed: number;
  pending: number;
  /** Workers that still had destroys due when their per-activation budget ran out. */
  over_limit: string[];
  errors: { item: string; error: string }[];
}

export function emptyStatus(): CollectStatus {
  return {
    containers_removed: 0,
    failed_expired: 0,
    marked: 0,
    missing_removed: 0,
    workers: 0,
    workers_busy: 0,
    unknown: 0,
    confirmed: 0,
    completed: 0,
    creating_failed: 0,
    missing: 0,
    destroyed: 0,
    destroy_failed: 0,
    pending: 0,
    over_limit: [],
    errors: [],
  };
}

async function one<R>(q: Query, sql: string, params: unknown[]): Promise<R> {
  const { rows } = await q(sql, params);
  return Object.values(rows[0] as object)[0] as R;
}

/**
 * One agent's report reconciled (gk_private.volumes_report, one statement). The handles travel as
 * one comma-joined text and become a uuid[] in the statement: for 100,000 handles that is about
 * half the time of a uuid[] parameter (pg's array literal, escaped per element, parsed by
 * array_in; bench/volumes.ts). The agent's listing holds only well-formed handles.
 */
export async function reconcileReport(q: Query, workerId: string, live: string[], building: string[]): Promise<Record<string, number>> {
  return one<Record<string, number>>(
    q,
    "select gk_private.volumes_report($1, string_to_array($2, ',')::uuid[], string_to_array($3, ',')::uuid[])",
    [workerId, live.join(","), building.join(",")],
  );
}

/** Reconciles the agent's report; returns the handles adopted (due destroys now). */
async function report(q: Query, client: PeerClient, w: AgentWorker, status: CollectStatus, timeoutMs: number): Promise<number> {
  const listing = await client.request<{ live: string[]; building: string[] }>("GET", "/v1/volumes", undefined, timeoutMs);
  const r = await reconcileReport(q, w.id, listing.live, listing.building);
  status.unknown += r.unknown ?? 0;
  status.confirmed += r.confirmed ?? 0;
  status.completed += r.completed ?? 0;
  status.creating_failed += r.failed ?? 0;
  status.missing += r.missing ?? 0;
  return r.unknown ?? 0;
}

/**
 * Sends one batch. A call that failed as a whole is recorded (attempts, error, backoff), then
 * thrown; an answer is recorded by `recordBatch`.
 */
async function sendBatch(q: Query, client: PeerClient, w: AgentWorker, handles: string[], status: CollectStatus): Promise<DestroyResult> {
  try {
    return await client.request<DestroyResult>("POST", "/v1/volumes/destroy", { handles });
  } catch (e) {
    const msg = `agent ${w.name}: ${errorMessage(e)}`;
    await q("select gk_private.volumes_worker_lease_renew($1), gk_private.volumes_destroy_failed($1, $2::uuid[], $3::text[])", [
      w.id,
      handles,
      handles.map(() => msg),
    ]);
    status.destroy_failed += handles.length;
    throw e;
  }
}

/** Records one answer in one call, which first renews the worker's lease. */
async function recordBatch(q: Query, w: AgentWorker, out: DestroyResult, status: CollectStatus): Promise<void> {
  const failed = [
    ...out.failed,
    ...out.pending.map((handle) => ({ handle, error: "still being moved out of live/ on the agent when its deadline passed" })),
  ];
  const { rows } = await q<{ destroyed: number }>(
    `select gk_private.volumes_worker_lease_renew($1),
            gk_private.volumes_destroyed($1, $2::uuid[]) as destroyed,
            gk_private.volumes_destroy_failed($1, $3::uuid[], $4::text[]) as failed`,
    [w.id, out.destroyed, failed.map((f) => f.handle), failed.map((f) => f.error)],
  );
  status.destroyed += rows[0]!.destroyed;
  status.destroy_failed += out.failed.length;
  status.pending += out.pending.length;
}

/**
 * Sends the batches with at most `parallelism` calls in flight. Each lane records its previous
 * answer while its next batch is on the way, so the agent does not wait for the database between
 * calls (at most one answer per lane unrecorded); all are recorded before this returns. The first
 * failure (a call, or recording) stops every lane after its current batch and is thrown.
 */
async function sendAll(q: Query, client: PeerClient, w: AgentWorker, batches: string[][], parallelism: number, status: CollectStatus) {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
  };
  const lane = async () => {
    let recording: Promise<void> = Promise.resolve();
    while (!failure && next < batches.length) {
      const out = await sendBatch(q, client, w, batches[next++]!, status).catch(fail);
      await recording;
      if (!out) break;
      recording = recordBatch(q, w, out, status).catch(fail);
    }
    await recording;
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, batches.length) }, lane));
  if (failure) throw new Error(`agent ${w.name}: ${errorMessage(failure.error)}`);
}

/** Handles taken per round: enough to keep every lane busy for a while, few enough to stay current. */
const ROUND_BATCHES = 8;

/**
 * A worker's destroys, under the collector's lease on its row: take the due handles (one
 * statement, oldest due first), send them in batches with at most `parallelism` calls in flight,
 * and again until nothing is due; then mark again for this worker (a destroyed child can leave its
 * parent an orphan) until no orphan is left, within the budget. A call that fails as a whole
 * (no answer within its deadline, refused) ends the worker's turn: its batch is recorded as failed,
 * the unsent ones stay due for the next activation. No row locks and no transaction per batch: the
 * lease keeps other collectors off this worker, and should it run out regardless, a handle sent
 * twice is destroyed once (destroying a missing volume succeeds; outcomes are conditional).
 */
async function destroyAll(q: Query, client: PeerClient, w: AgentWorker, opts: CollectOptions, parallelism: number, status: CollectStatus) {
  let left = opts.maxDestroysPerWorker;
  let rechecked = false;
  for (;;) {
    const take = Math.min(left, parallelism * opts.batchSize * ROUND_BATCHES);
    const { rows } = await q<{ handle: string }>("select handle::text from gk_private.volumes_due_destroys($1, $2)", [
      w.id,
      Math.max(take, 1),
    ]);
    if (left <= 0) {
      if (rows.length > 0) status.over_limit.push(w.name);
      return;
    }
    if (rows.length === 0) {
      if (rechecked) return;
      // A mark that waited for another collector's mark of every worker marks nothing new, but
      // what that one marked is due now: after a mark that found nothing, due destroys are looked
      // for once more before the worker's turn ends.
      rechecked = (await one<number>(q, "select gk_private.volumes_mark_orphans(array[$1::uuid])", [w.id])) === 0;
      continue;
    }
    left -= rows.length;
    const batches: string[][] = [];
    for (let i = 0; i < rows.length; i += opts.batchSize) batches.push(rows.slice(i, i + opts.batchSize).map((r) => r.handle));
    await sendAll(q, client, w, batches, parallelism, status);
  }
}

export async function collect(db: CollectDb, agents: VolumeAgents, opts: CollectOptions = DEFAULT_COLLECT): Promise<CollectStatus> {
  const q = db.query;
  const status = emptyStatus();
  const swept = await one<Record<string, number>>(q, "select gk_private.volumes_collect()", []);
  Object.assign(status, {
    containers_removed: swept.containers_removed,
    failed_expired: swept.failed_expired,
    marked: swept.marked,
    missing_removed: swept.missing_removed,
  });
  const { rows: workers } = await q<AgentWorker>("select id, name, address from gk_private.volumes_collectable_workers()");
  status.workers = workers.length;
  await mapSettled(workers, opts.workerConcurrency, async (w) => {
    if (!(await one<boolean | null>(q, "select gk_private.volumes_worker_lease($1)", [w.id]))) {
      status.workers_busy++;
      return;
    }
    try {
      const client = await agents.client(w);
      // Destroys first, then the report: the agent starts removing at once instead of after a
      // listing of its whole live/ and its reconciliation (half a second at 25,000 volumes on a
      // loaded machine; bench/volumes.ts), and the report then overlaps the agent's removal of
      // dead/. Handles it adopts are destroyed in the same turn.
      await destroyAll(q, client, w, opts, agents.parallelism, status);
      if ((await report(q, client, w, status, opts.reportTimeoutMs)) > 0) await destroyAll(q, client, w, opts, agents.parallelism, status);
    } catch (e) {
      status.errors.push({ item: w.name, error: errorMessage(e) });
    } finally {
      await q("select gk_private.volumes_worker_release($1)", [w.id]).catch(() => {});
    }
  });
  return status;
}
