// Retention: creates telemetry partitions ahead of time, then prunes every registered kind
// (gk_public.retention_policies → gk_private.retention_prune__<kind>(cutoff, max_rows)), one kind
// at a time, each bounded by its policy's max_per_activation. A kind that fails is an item error
// and the others still run; when a kind hit its limit, more remains and the next activation
// follows within a minute instead of at the next hourly tick.
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

export default defineReconciler({
  name: "retention__sweep",
  schedule: "17 * * * *",
  description: "Prunes history past its retention policy (bounded per kind and activation) and creates telemetry partitions ahead.",
  status: z.object({
    telemetry_partitions_created: z.number().int().nonnegative(),
    /** Rows pruned per kind in this activation. */
    deleted: z.record(z.string(), z.number().int().nonnegative()),
    /** Each kind's limit for this activation (its policy's max_per_activation). */
    max_rows: z.record(z.string(), z.number().int().positive()),
    /** Kinds that hit their limit: more remains for the next activation. */
    more_remaining: z.array(z.string()),
  }),
  counts: (s) => ({ telemetry_partitions_created: s.telemetry_partitions_created, ...s.deleted }),
  async run({ helpers, itemError, again }) {
    const parts = await helpers.query<{ n: number }>("select gk_private.ensure_telemetry_partitions() as n");
    const status = { telemetry_partitions_created: parts.rows[0].n, deleted: {}, max_rows: {}, more_remaining: [] as string[] } as {
      telemetry_partitions_created: number;
      deleted: Record<string, number>;
      max_rows: Record<string, number>;
      more_remaining: string[];
    };
    const { rows: policies } = await helpers.query<{ kind: string }>("select kind from gk_public.retention_policies order by kind");
    for (const { kind } of policies) {
      try {
        const { rows } = await helpers.query<{ deleted: string; max_rows: number; more: boolean }>(
          "select * from gk_private.retention_prune($1)",
          [kind],
        );
        status.deleted[kind] = Number(rows[0].deleted);
        status.max_rows[kind] = rows[0].max_rows;
        if (rows[0].more) status.more_remaining.push(kind);
      } catch (e) {
        await itemError(kind, e);
      }
    }
    if (status.more_remaining.length) again(60);
    return status;
  },
});
