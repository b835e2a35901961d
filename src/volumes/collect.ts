// The volume collector: one activation computes everything from scratch. The database part
// (gk_private.volumes_collect: ownerless containers, failed volumes past their grace, the orphan
// mark, missing volumes past their grace) is one call; then every serving worker is visited at
// once, each under a lease on its row so two collectors never double the load on one agent:
//   report  — the agent's handles, reconciled both ways in one statement (volumes_report);
//   destroy — claim due destroys, send them in batches with at most `parallelism` calls in flight
//             to this agent, each with a deadline; record each batch's outcome in one call; mark
//             again (a destroyed child can leave its parent an orphan) until nothing is due.
// One hung agent costs its own loop a deadline per call and nothing else: the workers are
// independent, and an agent that answers no call of a round is left for the next activation.
import { errorMessage } from "../lib/errors.ts";
import { mapSettled } from "../lib/map-limit.ts";
import type { PeerClient } from "../peers/client.ts";
import type { DestroyResult } from "./agent-role.ts";
import type { AgentWorker, VolumeAgents } from "./agents.ts";

export type Query = <R = any>(sql: string, params?: unknown[]) => Promise<{ rows: R[] }>;

/** A pool (or graphile-worker's helpers) as a CollectDb. */
export function collectDb(pool: {
  query(sql: string, params?: unknown[]): Promise<{ rows: any[] }>;
  connect(): Promise<{ query(sql: string, params?: unknown[]): Promise<{ rows: any[] }>; release(): void }>;
}): CollectDb {
  return {
    query: (sql, params) => pool.query(sql, params) as never,
    async withClient(fn) {
      const c = await pool.connect();
      try {
        return await fn((sql, params) => c.query(sql, params) as never);
      } finally {
        c.release();
      }
    },
  };
}

/** The database as the collector uses it: single statements, and one connection for a batch. */
export interface CollectDb {
  query: Query;
  /** Runs fn on one connection of its own (the batch's transaction holds its claimed rows). */
  withClient<T>(fn: (query: Query) => Promise<T>): Promise<T>;
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

async function report(q: Query, client: PeerClient, w: AgentWorker, status: CollectStatus, timeoutMs: number): Promise<void> {
  const listing = await client.request<{ live: string[]; building: string[] }>("GET", "/v1/volumes", undefined, timeoutMs);
  const r = await one<Record<string, number>>(q, "select gk_private.volumes_report($1, $2::uuid[], $3::uuid[])", [
    w.id,
    listing.live,
    listing.building,
  ]);
  status.unknown += r.unknown ?? 0;
  status.confirmed += r.confirmed ?? 0;
  status.completed += r.completed ?? 0;
  status.creating_failed += r.failed ?? 0;
  status.missing += r.missing ?? 0;
}

/**
 * One lane of a worker's destroys: in a transaction, claim a batch of due destroys (row locks,
 * skipping rows another lane or collector holds), send it, record the outcome, commit — until
 * nothing is due or the budget is spent. A killed collector's claims are released with its
 * connection; an agent that does not answer costs the lane one deadline and ends it.
 */
async function destroyLane(
  db: CollectDb,
  client: PeerClient,
  w: AgentWorker,
  batchSize: number,
  budget: { left: number },
  status: CollectStatus,
) {
  while (budget.left > 0) {
    const size = Math.min(batchSize, budget.left);
    const claimed = await db.withClient(async (q) => {
      await q("begin");
      try {
        const { rows } = await q<{ handle: string }>("select handle::text from gk_private.volumes_claim_destroys($1, $2)", [w.id, size]);
        budget.left -= rows.length;
        if (rows.length > 0)
          await destroyBatch(
            q,
            client,
            w,
            rows.map((r) => r.handle),
            status,
          );
        await q("commit");
        return rows.length;
      } catch (e) {
        await q("rollback").catch(() => {});
        throw e;
      }
    });
    if (claimed === 0) return;
  }
}

/** Sends one claimed batch and records its outcome; a call that failed as a whole is recorded, then thrown. */
async function destroyBatch(q: Query, client: PeerClient, w: AgentWorker, handles: string[], status: CollectStatus): Promise<void> {
  let out: DestroyResult;
  try {
    out = await client.request<DestroyResult>("POST", "/v1/volumes/destroy", { handles });
  } catch (e) {
    const msg = `agent ${w.name}: ${errorMessage(e)}`;
    await q("select gk_private.volumes_destroy_failed($1, $2::uuid[], $3::text[])", [w.id, handles, handles.map(() => msg)]);
    await q("commit");
    status.destroy_failed += handles.length;
    throw e;
  }
  const failed = [
    ...out.failed,
    ...out.pending.map((handle) => ({ handle, error: "still being moved out of live/ on the agent when its deadline passed" })),
  ];
  const { rows } = await q<{ destroyed: number }>(
    `select gk_private.volumes_destroyed($1, $2::uuid[]) as destroyed,
            gk_private.volumes_destroy_failed($1, $3::uuid[], $4::text[]) as failed`,
    [w.id, out.destroyed, failed.map((f) => f.handle), failed.map((f) => f.error)],
  );
  status.destroyed += rows[0]!.destroyed;
  status.destroy_failed += out.failed.length;
  status.pending += out.pending.length;
}

async function destroyAll(
  db: CollectDb,
  client: PeerClient,
  w: AgentWorker,
  opts: CollectOptions,
  parallelism: number,
  status: CollectStatus,
) {
  const budget = { left: opts.maxDestroysPerWorker };
  for (;;) {
    const lanes = await mapSettled(Array.from({ length: parallelism }), parallelism, () =>
      destroyLane(db, client, w, opts.batchSize, budget, status),
    );
    await db.query("select gk_private.volumes_worker_lease_renew($1)", [w.id]);
    const failed = lanes.find((l) => l.status === "rejected") as PromiseRejectedResult | undefined;
    if (failed) throw new Error(`agent ${w.name}: ${errorMessage(failed.reason)}`);
    if (budget.left <= 0) {
      status.over_limit.push(w.name);
      return;
    }
    // Nothing due any more: a destroyed child may have left its parent an orphan.
    if ((await one<number>(db.query, "select gk_private.volumes_mark_orphans(array[$1::uuid])", [w.id])) === 0) return;
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
      await report(q, client, w, status, opts.reportTimeoutMs);
      await destroyAll(db, client, w, opts, agents.parallelism, status);
    } catch (e) {
      status.errors.push({ item: w.name, error: errorMessage(e) });
    } finally {
      await q("select gk_private.volumes_worker_release($1)", [w.id]).catch(() => {});
    }
  });
  return status;
}
