// The rollout processor: ends launched rollouts from their robots' states (completed, or failed
// past the operator's threshold, robots past the deadline failed), set-based in one statement,
// each rollout locked on its own (SKIP LOCKED: two processors never take the same one).
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

export default defineReconciler({
  name: "rollouts__process",
  description:
    "Ends launched rollouts: completed when every robot has finished, failed past the failure threshold; robots past the deadline fail.",
  limits: z.object({ max_rollouts: z.number().int().positive().max(100_000).default(1000) }),
  status: z.object({
    completed: count,
    failed: count,
    robots_timed_out: count,
    /** The rollouts ended, with their result (first 100). */
    ended: z.array(z.object({ rollout_id: z.string(), team_id: z.string(), state: z.string(), result: z.string() })).max(100),
  }),
  async run({ helpers, limits, again }) {
    const { rows } = await helpers.query<{ rollout_id: string; team_id: string; state: string; result: string; timed_out: number }>(
      "select * from gk_private.rollouts_process($1)",
      [limits.max_rollouts],
    );
    const { rows: launched } = await helpers.query<{ n: number }>(
      "select count(*)::int as n from gk_public.rollouts where state = 'launched'",
    );
    if (launched[0].n >= limits.max_rollouts) again(5);
    return {
      completed: rows.filter((r) => r.state === "completed").length,
      failed: rows.filter((r) => r.state === "failed").length,
      robots_timed_out: rows.reduce((s, r) => s + r.timed_out, 0),
      ended: rows.slice(0, 100).map(({ rollout_id, team_id, state, result }) => ({ rollout_id, team_id, state, result })),
    };
  },
});
