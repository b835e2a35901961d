// Cron: the bin reconciler. Pending items (revocations, issuances, blob purges) whose lease ran out
// — their job is gone, permanently failed, or locked by a killed worker — get a fresh job.
import { z } from "zod";
import { runActivation } from "../src/worker/reconciler.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ _cron: z.unknown().optional(), maxItems: z.number().int().positive().optional() }),
  async run({ maxItems }, { helpers }) {
    await runActivation(helpers, "bin__reconcile", async () => {
      const { rows } = await helpers.query<{ counts: Record<string, number> }>("select gk_private.bin_redispatch($1) as counts", [
        maxItems ?? 10_000,
      ]);
      return rows[0].counts;
    });
  },
});
