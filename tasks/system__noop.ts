// Does nothing (for `ms` milliseconds, when given): a baseline for benchmarks (queue overhead
// without any effect) and smoke tests of shutdown and outages that need a job in flight.
// `hold_attempts`: wait only during the first n attempts (a worker-kill test's job is long on the
// worker that dies and quick on the one that takes over).
import { z } from "zod";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z
    .object({
      n: z.number().int().optional(),
      ms: z.number().int().min(0).max(60_000).optional(),
      hold_attempts: z.number().int().min(1).optional(),
    })
    .strict(),
  async run({ ms, hold_attempts }, { helpers }) {
    if (hold_attempts !== undefined && helpers.job.attempts > hold_attempts) return;
    if (ms) await new Promise((r) => setTimeout(r, ms));
  },
});
