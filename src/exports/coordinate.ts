// The export coordinator (tasks/exports__coordinate.ts), after omicron's
// user_data_export_coordinator. Each activation settles the resources recorded as changed
// (sql/720_exports_pending.sql: a new resource gets a requested record, a deleted one's records
// are marked), marks the records of expunged nodes, deletes the marked ones never attached
// (bypass), computes the changeset in SQL (sql/700_exports.sql: requested records, marked live
// records) and starts the sagas for it — it never waits for them. All of that reads only what
// changed; the full anti-join over every resource runs as a safety net every
// full_sweep_minutes. Last it asks nodes about a few live attachments, so one a node lost
// (restarted without its storage) is marked and re-created. Every count is this activation's own.
import type pg from "pg";
import { z } from "zod";
import { mapSettled } from "../lib/map-limit.ts";
import { PeerHttpError } from "../peers/client.ts";
import type { Services } from "../services.ts";
import { transaction } from "../db/pool.ts";
import { exportNodes } from "./nodes.ts";
import { createExport } from "./sagas/create.ts";
import { deleteExport } from "./sagas/delete.ts";

const n = z.number().int().min(0);
const ids = z.array(z.string()).max(100);

export const CoordinateStatus = z.object({
  /** The safety net ran (the full anti-joins), and how many resources it found to settle. */
  full_sweep: z.boolean(),
  swept: n,
  /** Pending entries settled (resources recorded as changed). */
  settled: n,
  /**
   * Queued records whose saga did not take them within the lease: given back to the changeset
   * (their saga finished or is gone) or their saga's job enqueued again (it was lost).
   */
  overdue_released: n,
  overdue_requeued: n,
  marked_for_deletion: n,
  bypassed: n,
  bypassed_ids: ids,
  requested: n,
  create_invoked_ok: n,
  create_ids: ids,
  delete_invoked_ok: n,
  delete_ids: ids,
  verified: n,
  lost: n,
});
export type CoordinateStatus = z.infer<typeof CoordinateStatus>;

export const CoordinateLimits = z.object({
  /** Pending entries settled, and sagas started of each kind, per activation (in rounds of 250). */
  max_items: z.number().int().positive().max(100_000).default(2_000),
  /** Live attachments checked with their node per activation. */
  verify_batch: z.number().int().min(0).max(10_000).default(50),
  /**
   * An activation cut short by max_items skips verify, unless the last verify is older than
   * this: under a backlog that never ends, verify still runs at least this often.
   */
  verify_every_seconds: z.number().int().positive().max(86_400).default(60),
  /**
   * Times a queued saga that no job drives is enqueued again (once per bin lease) before it is
   * failed and its record given back (a saga whose steps no worker knows).
   */
  max_saga_requeues: z.number().int().min(0).max(1_000).default(5),
  /** How often the safety net goes over every resource (the changeset itself reads only changes). */
  full_sweep_minutes: z.number().int().positive().max(10_080).default(60),
});
export type CoordinateLimits = z.infer<typeof CoordinateLimits>;

export interface CoordinateContext {
  /** graphile-worker's helpers (or a pool) provide both. */
  query: (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;
  withPgClient: <T>(fn: (c: pg.PoolClient) => Promise<T>) => Promise<T>;
  services: Services;
  limits: CoordinateLimits;
  itemError(item: string, error: unknown): Promise<void>;
  /** Work is left past the limits. */
  more(): void;
}

interface ChangeRow {
  action: "create" | "delete";
  export_id: string | null;
  resource_type: string;
  resource_id: string;
  generation: string | null;
}

export async function coordinate(ctx: CoordinateContext): Promise<CoordinateStatus> {
  const { limits } = ctx;
  const status: CoordinateStatus = {
    full_sweep: false,
    swept: 0,
    settled: 0,
    overdue_released: 0,
    overdue_requeued: 0,
    marked_for_deletion: 0,
    bypassed: 0,
    bypassed_ids: [],
    requested: 0,
    create_invoked_ok: 0,
    create_ids: [],
    delete_invoked_ok: 0,
    delete_ids: [],
    verified: 0,
    lost: 0,
  };
  // In rounds of ROUND items, so the first sagas run while the rest are settled and started:
  // settle what changed, mark, bypass, the changeset, start its sagas; again while a round was
  // full, up to max_items per activation (then the next activation runs a second later).
  const rounds = Math.ceil(limits.max_items / ROUND);
  let cutShort = false;
  let changesetFull = false;
  for (let round = 0; ; round++) {
    const n = Math.min(ROUND, limits.max_items);
    // A new record is written with its create saga started (one statement, one row version).
    const settled = (await ctx.query("select * from gk_private.exports_settle_pending($1, $2, $3)", [n, createExport.name, createSteps]))
      .rows[0];
    status.settled += settled.taken;
    status.requested += settled.requested;
    status.marked_for_deletion += settled.marked;
    status.create_invoked_ok += settled.started.length;
    status.create_ids.push(...settled.started.slice(0, 100 - status.create_ids.length));
    let full = settled.taken === n;
    if (round === 0) {
      // Before the changeset, so a record given back is started again in this activation.
      const overdue = (
        await ctx.query("select * from gk_private.exports_queued_overdue($1, $2)", [limits.max_items, limits.max_saga_requeues])
      ).rows[0];
      status.overdue_released = overdue.released;
      status.overdue_requeued = overdue.requeued;
      // Failed for good: each is an item error of this activation (status, GraphQL), with the
      // saga's own error; its record was given back and is started again below.
      for (const id of overdue.failed as string[]) {
        await ctx.itemError(
          `saga ${id}`,
          new Error(`not driven after ${limits.max_saga_requeues} re-enqueues (no worker knows its steps?); failed, its record given back`),
        );
      }
      if (overdue.released + overdue.requeued >= limits.max_items) ctx.more();
      // The safety net after the first round, so it finds only what no entry covers; what it
      // finds is settled by the next rounds.
      const swept = (
        await ctx.query("select gk_private.exports_full_sweep($1, make_interval(mins => $2)) as n", [
          limits.max_items,
          limits.full_sweep_minutes,
        ])
      ).rows[0].n;
      if (swept !== null) {
        status.full_sweep = true;
        status.swept = swept;
        // A part came back at the limit: the sweep is not done, and goes on next activation.
        if (swept >= limits.max_items) ctx.more();
        if (swept > 0) full = true;
      }
    }
    // Mark, bypass and the changeset, unless nothing can be there for them: after the first
    // round, only when they came back full or this round's settling marked records (the records
    // settling writes have their create saga started already). During a launch that is three
    // statements fewer per round of 250, on cores the sagas share; what appears meanwhile by
    // other means (a saga unwound to requested, a node expunged) is the next activation's.
    if (round === 0 || changesetFull || settled.marked > 0) {
      status.marked_for_deletion += (await ctx.query("select gk_private.exports_mark_for_deletion() as n")).rows[0].n;
      const bypassed: string[] = (await ctx.query("select gk_private.exports_bypass($1) as ids", [n])).rows[0].ids;
      status.bypassed += bypassed.length;
      status.bypassed_ids.push(...bypassed.slice(0, 100 - status.bypassed_ids.length));

      const rows = (await ctx.query("select * from gk_private.exports_changeset($1)", [n])).rows as ChangeRow[];
      const of = (a: ChangeRow["action"]) =>
        rows.filter((r) => r.action === a).map((r) => ({ export_id: r.export_id!, generation: Number(r.generation) + 1 }));
      const created = await startSagas(ctx, createExport, of("create"), "create");
      status.create_invoked_ok += created.length;
      status.create_ids.push(...created.slice(0, 100 - status.create_ids.length));
      const deleted = await startSagas(ctx, deleteExport, of("delete"), "delete");
      status.delete_invoked_ok += deleted.length;
      status.delete_ids.push(...deleted.slice(0, 100 - status.delete_ids.length));
      changesetFull = bypassed.length === n || of("create").length === n || of("delete").length === n;
    } else changesetFull = false;
    full ||= changesetFull;
    if (!full) break;
    if (round + 1 >= rounds) {
      cutShort = true;
      ctx.more();
      break;
    }
  }
  // Last: a node that does not answer must not hold up the changeset. What is found lost is
  // deleted and re-created by the next activation, a second later. An activation cut short by
  // max_items leaves it to the one that finishes the backlog (the next runs at once): during a
  // launch its node calls and their time would compete with the attaches. But not for longer
  // than verify_every_seconds, so a backlog that never ends cannot starve it.
  const claim = await ctx.query("select gk_private.exports_verify_claim(make_interval(secs => $1), $2) as due", [
    limits.verify_every_seconds,
    !cutShort,
  ]);
  if (claim.rows[0].due) status.lost = await verify(ctx, status);
  if (status.lost > 0) ctx.more();
  return status;
}

const createSteps = createExport.steps.map((s) => s.name);

/** Items per round of an activation (each round's sagas start in one transaction). */
const ROUND = 250;

/**
 * Starts the sagas in one transaction with the records noting their saga; failing, it is an item
 * error and the activation goes on. Returns the export ids whose saga started.
 */
async function startSagas(
  ctx: CoordinateContext,
  saga: typeof createExport | typeof deleteExport,
  items: { export_id: string; generation: number }[],
  what: string,
): Promise<string[]> {
  if (items.length === 0) return [];
  try {
    await ctx.withPgClient((c) =>
      transaction(c, async (t) => {
        const sagaIds = await saga.startMany(t, items);
        await t.query("select gk_private.exports_sagas_started($1, $2)", [items.map((x) => x.export_id), sagaIds]);
      }),
    );
    return items.map((x) => x.export_id);
  } catch (e) {
    await ctx.itemError(what, e);
    return [];
  }
}

/** Asks nodes about the least recently verified live attachments; returns how many were newly found lost. */
async function verify(ctx: CoordinateContext, status: CoordinateStatus): Promise<number> {
  if (ctx.limits.verify_batch === 0) return 0;
  const { rows } = await ctx.query("select * from gk_private.exports_to_verify($1)", [ctx.limits.verify_batch]);
  if (rows.length === 0) return 0;
  const nodes = exportNodes(ctx.services);
  const present: string[] = [];
  const lost: string[] = [];
  // A node that fails one call is not asked about its other attachments this time: a hung node
  // costs one call deadline, not one per attachment.
  const failing = new Set<string>();
  await mapSettled(rows, nodes.opts.parallelism, async (r) => {
    if (failing.has(r.node_id)) return;
    try {
      const client = await nodes.client({ id: r.node_id, worker_id: r.worker_id, address: r.address });
      await client.request("GET", `/v1/exports/${r.attachment_id}`);
      present.push(r.export_id);
    } catch (e) {
      if (e instanceof PeerHttpError && e.status === 404) lost.push(r.export_id);
      else {
        failing.add(r.node_id);
        await ctx.itemError(`verify ${r.export_id}`, e);
      }
    }
  });
  status.verified = present.length;
  return (await ctx.query("select gk_private.exports_verified($1, $2) as n", [present, lost])).rows[0].n;
}
