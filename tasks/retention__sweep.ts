// Cron: retention. Creates telemetry partitions ahead of time, then calls every registered
// gk_private.retention_prune__<kind>(cutoff) (gk_public.retention_policies), one kind at a time;
// a kind that fails is recorded as an item error and the others still run.
import { z } from "zod";
import { runActivation } from "../src/worker/reconciler.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ _cron: z.unknown().optional() }),
  async run(_payload, { helpers }) {
    await runActivation(helpers, "retention__sweep", async (activation) => {
      const counts: Record<string, number> = {};
      const parts = await helpers.query<{ n: number }>("select gk_private.ensure_telemetry_partitions() as n");
      counts.telemetry_partitions_created = parts.rows[0].n;
      const { rows: policies } = await helpers.query<{ kind: string }>("select kind from gk_public.retention_policies order by kind");
      for (const { kind } of policies) {
        try {
          const { rows } = await helpers.query<{ n: string }>("select gk_private.retention_prune($1) as n", [kind]);
          counts[kind] = Number(rows[0].n);
        } catch (e) {
          await activation.itemError(kind, e);
        }
      }
      return counts;
    });
  },
});
