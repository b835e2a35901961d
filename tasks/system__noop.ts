// Does nothing: a baseline for benchmarks (queue overhead without any effect) and smoke tests.
import { z } from "zod";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ n: z.number().int().optional() }).strict(),
  async run() {},
});
