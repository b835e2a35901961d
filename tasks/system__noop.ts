// Does nothing (for `ms` milliseconds, when given): a baseline for benchmarks (queue overhead
// without any effect) and smoke tests of shutdown and outages that need a job in flight.
import { z } from "zod";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ n: z.number().int().optional(), ms: z.number().int().min(0).max(60_000).optional() }).strict(),
  async run({ ms }) {
    if (ms) await new Promise((r) => setTimeout(r, ms));
  },
});
