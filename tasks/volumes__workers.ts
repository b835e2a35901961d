// Worker lifecycle (gk_private.workers_reconcile): expired heartbeats stall, idle landing workers
// land, idle retiring workers are deleted (their certificates go to revocation), and stalled ones
// past groundskeeper.stalled_worker_timeout are pruned.
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const n = z.number().int().min(0);

export default defineReconciler({
  name: "volumes__workers",
  schedule: "* * * * *",
  description: "Stalls workers whose heartbeat expired, lands and retires idle ones, prunes long-stalled ones (when configured).",
  status: z.object({ stalled: n, landed: n, retired: n, pruned: n }),
  async run({ helpers }) {
    const { rows } = await helpers.query<{ r: { stalled: number; landed: number; retired: number; pruned: number } }>(
      "select gk_private.workers_reconcile() as r",
    );
    return rows[0]!.r;
  },
});
