// Periodic resigner: marks every online role expiring within its window dirty (each role on
// its own) and schedules the publish of every team with dirty roles or pending uploads — the
// same publish path as target changes, so the two cannot race.
import { z } from "zod";
import { defineTask } from "../src/worker/define-task.ts";
import { runActivation } from "../src/worker/reconciler.ts";

export default defineTask({
  payload: z.object({ _cron: z.unknown().optional() }).strict(),
  async run(_payload, { helpers }) {
    await runActivation(helpers, "tuf__resign", async () => {
      const { rows } = await helpers.query<{ team_id: string; roles_marked: number; pending_uploads: number }>(
        "select * from gk_private.tuf_resign_sweep()",
      );
      return {
        roles_marked: rows.reduce((s, r) => s + r.roles_marked, 0),
        teams_scheduled: rows.length,
        pending_uploads: rows.reduce((s, r) => s + r.pending_uploads, 0),
      };
    });
  },
});
