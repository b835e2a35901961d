// The regeneration sweep: robots whose director metadata is dirty and that have not read it
// since (or whose metadata expires within the resign window: the director's resigner), signed
// in batches; director roots about to expire renewed. A robot changed while its batch was
// signed keeps its flag (generation check) and is signed by a later batch.
import { z } from "zod";
import { signNextRoot } from "../src/rollouts/director-keys.ts";
import { regenerateInBatches } from "../src/rollouts/regenerate.ts";
import { requireService } from "../src/services.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

export default defineReconciler({
  name: "rollouts__regenerate",
  schedule: "* * * * *",
  description: "Regenerates dirty or expiring director metadata of robots in batches, and renews expiring director roots.",
  limits: z.object({
    max_robots: z.number().int().positive().max(1_000_000).default(20_000),
    batch_size: z.number().int().positive().max(5000).default(500),
  }),
  status: z.object({
    robots_regenerated: count,
    robots_raced: count,
    roots_renewed: count,
    /** Regenerated robots (first 100). */
    robots: z.array(z.string()).max(100),
    /** Teams whose director root was renewed. */
    teams: z.array(z.string()).max(100),
  }),
  async run({ helpers, services, limits, itemError, again }) {
    const box = requireService(services, "secrets");
    return helpers.withPgClient(async (c) => {
      const teams: string[] = [];
      for (const { team_id } of (await c.query<{ team_id: string }>("select gk_private.director_roots_due() as team_id")).rows) {
        try {
          await signNextRoot(c, box, team_id, { newKeys: false });
          teams.push(team_id);
        } catch (e) {
          await itemError(`root:${team_id}`, e);
        }
      }
      const due = (await c.query<{ robot_id: string }>("select robot_id from gk_private.director_due($1)", [limits.max_robots])).rows.map(
        (r) => r.robot_id,
      );
      const { stored, raced } = await regenerateInBatches(c, box, due, limits.batch_size, (batch, e) => itemError(`batch:${batch[0]}`, e));
      if (due.length === limits.max_robots || raced.length > 0) again(1);
      return {
        robots_regenerated: stored.length,
        robots_raced: raced.length,
        roots_renewed: teams.length,
        robots: stored.slice(0, 100),
        teams: teams.slice(0, 100),
      };
    });
  },
});
