// Worker lifecycle (gk_private.workers_reconcile): expired heartbeats stall, idle landing workers
// land, idle retiring workers are deleted (their certificates go to revocation), and stalled ones
// past groundskeeper.stalled_worker_timeout are pruned.
import { z } from "zod";
import { defineTask } from "../src/worker/define-task.ts";
import { runActivation } from "../src/worker/reconciler.ts";

export default defineTask({
  payload: z.object({}).passthrough(),
  async run(_payload, { helpers }) {
    await runActivation(helpers, "volumes__workers", async () => {
      const { rows } = await helpers.query<{ r: Record<string, number> }>("select gk_private.workers_reconcile() as r");
      return rows[0]!.r;
    });
  },
});
