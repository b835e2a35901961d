// Periodic resigner: marks every online role expiring within its window dirty (each role on
// its own) and schedules the publish of every team with dirty roles or pending uploads — the
// same publish path as target changes, so the two cannot race.
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

export default defineReconciler({
  name: "tuf__resign",
  schedule: "*/5 * * * *",
  description: "Renews online TUF roles expiring within their window and re-schedules lost publishes and uploads.",
  status: z.object({
    roles_marked: count,
    teams_scheduled: count,
    pending_uploads: count,
    /** The teams whose publish was scheduled (first 100). */
    teams: z.array(z.string()).max(100),
  }),
  async run({ helpers }) {
    const { rows } = await helpers.query<{ team_id: string; roles_marked: number; pending_uploads: number }>(
      "select * from gk_private.tuf_resign_sweep()",
    );
    return {
      roles_marked: rows.reduce((s, r) => s + r.roles_marked, 0),
      teams_scheduled: rows.length,
      pending_uploads: rows.reduce((s, r) => s + r.pending_uploads, 0),
      teams: rows.slice(0, 100).map((r) => r.team_id),
    };
  },
});
