// The volume collector (src/volumes/collect.ts): a reconciler, every minute and whenever volumes
// lose their owners (the triggers of sql/501_volumes.sql activate it through its job key).
import { z } from "zod";
import { collect } from "../src/volumes/collect.ts";
import { volumeAgents } from "../src/volumes/agents-for.ts";
import { defineTask } from "../src/worker/define-task.ts";
import { runActivation } from "../src/worker/reconciler.ts";

export default defineTask({
  payload: z.object({}).passthrough(),
  async run(_payload, { services, helpers }) {
    const agents = volumeAgents(services);
    await runActivation(helpers, "volumes__collect", async (activation) => {
      const { errors, ...counts } = await collect((sql, params) => helpers.query(sql, params as unknown[]) as never, agents);
      for (const e of errors) await activation.itemError(e.item, e.error);
      return { ...counts, errors: errors.length };
    });
  },
});
