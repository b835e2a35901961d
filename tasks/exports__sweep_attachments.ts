// The sweep of attachments no record holds (src/exports/sweep-attachments.ts): every 10 minutes,
// and again soon while a node's pass is not finished.
import { SweepLimits, SweepStatus, sweepAttachments, sweepLimitsProblem } from "../src/exports/sweep-attachments.ts";
import { failJobPermanently } from "../src/worker/queue.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

export default defineReconciler({
  name: "exports__sweep_attachments",
  schedule: "*/10 * * * *",
  description:
    "Detaches from every in-service export node the attachments no export record holds (an unwound or abandoned create saga's), once older than a grace period.",
  limits: SweepLimits,
  status: SweepStatus,
  async run({ services, helpers, limits, itemError, again }) {
    // Retrying cannot fix limits this process refuses: the job fails once, with the reason.
    const problem = sweepLimitsProblem(services, limits);
    if (problem) {
      await failJobPermanently(helpers);
      throw new Error(problem);
    }
    let more = false;
    const status = await sweepAttachments({
      query: (sql, params) => helpers.query(sql, params),
      services,
      limits,
      itemError,
      more: () => {
        more = true;
      },
    });
    if (more) again(5);
    return status;
  },
});
