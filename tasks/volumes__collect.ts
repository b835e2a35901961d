// The volume collector (src/volumes/collect.ts): every minute, and at once whenever volumes lose
// their owners or an operator retries a destroy (the triggers of sql/501_volumes.sql activate it).
import { z } from "zod";
import { type CollectDb, collect, DEFAULT_COLLECT, type Query } from "../src/volumes/collect.ts";
import { volumeAgents } from "../src/volumes/agents-for.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

const n = z.number().int().min(0);

export default defineReconciler({
  name: "volumes__collect",
  description:
    "Marks orphaned volumes, reconciles every agent's report both ways, destroys what is due on each agent (bounded per agent, deadline per call).",
  limits: z.object({
    max_destroys_per_worker: z.number().int().positive().default(DEFAULT_COLLECT.maxDestroysPerWorker),
    batch_size: z.number().int().min(1).max(1000).default(DEFAULT_COLLECT.batchSize),
  }),
  status: z.object({
    containers_removed: n,
    failed_expired: n,
    marked: n,
    missing_removed: n,
    workers: n,
    workers_busy: n,
    unknown: n,
    confirmed: n,
    completed: n,
    creating_failed: n,
    missing: n,
    destroyed: n,
    destroy_failed: n,
    pending: n,
    /** Workers whose destroys went past this activation's limit (the next one runs soon). */
    over_limit: z.array(z.string()),
  }),
  async run({ services, helpers, limits, itemError, again }) {
    // Single statements on the job's pool.
    const db: CollectDb = { query: ((sql: string, params?: unknown[]) => helpers.query(sql, params)) as Query };
    const { errors, over_limit, ...status } = await collect(db, volumeAgents(services), {
      ...DEFAULT_COLLECT,
      maxDestroysPerWorker: limits.max_destroys_per_worker,
      batchSize: limits.batch_size,
    });
    for (const e of errors) await itemError(e.item, e.error);
    if (over_limit.length > 0) again(1);
    return { ...status, over_limit };
  },
});
