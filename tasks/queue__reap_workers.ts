// The worker reaper: job-runner pools whose heartbeat expired (a SIGKILLed, crashed or hung
// worker; gk_private.queue_workers) get their jobs released to run again at once instead of after
// graphile-worker's 4 hours, and their running activations closed as failed. Copies of jobs
// that job-key replacement took over while they ran are removed rather than shown as failed
// (gk_private.queue_workers_release in sql/060_queue.sql). A worker's heartbeat activates this as
// soon as it sees an expired peer; the crontab's minute tick is the backstop.
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

const status = z.object({
  /** The pools given up on (graphile_worker.jobs.locked_by). */
  reaped_workers: z.array(z.string()),
  /** Their jobs, unlocked to run again. */
  released_jobs: count,
  /** Copies replaced through their job key while they ran: deleted, the replacement carries the work. */
  superseded_jobs: count,
  /** Jobs whose cut-off attempt was their last: permanently failed, with the reason. */
  exhausted_jobs: count,
  /** Activations those pools were running, closed as failed. */
  closed_activations: z.array(z.number().int()),
  live_workers: count,
});

export default defineReconciler({
  name: "queue__reap_workers",
  description: "Releases the jobs of job-runner pools whose heartbeat expired and closes their running activations.",
  limits: z.object({ max_workers: z.number().int().positive().max(10_000).default(100) }),
  status,
  counts: (s) => ({
    reaped: s.reaped_workers.length,
    released_jobs: s.released_jobs,
    superseded_jobs: s.superseded_jobs,
    exhausted_jobs: s.exhausted_jobs,
    closed_activations: s.closed_activations.length,
    live_workers: s.live_workers,
  }),
  async run({ helpers, limits, again }) {
    const { rows } = await helpers.query<{ r: z.infer<typeof status> & { more: boolean } }>(
      "select gk_private.queue_reap_workers($1) as r",
      [limits.max_workers],
    );
    const { more, ...result } = rows[0].r;
    if (more) again(0);
    return result;
  },
});
