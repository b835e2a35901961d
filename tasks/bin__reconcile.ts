// The bin reconciler: every registered bin kind (gk_public.bin_kinds) re-enqueues its pending
// items whose lease ran out — their job is gone, permanently failed, or held by a dead worker —
// at most max_items per kind, and skips kinds whose queue is still draining.
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const kindStatus = z.looseObject({ redispatched: z.number().int().nonnegative(), busy: z.boolean() });

export default defineReconciler({
  name: "bin__reconcile",
  schedule: "* * * * *",
  description: "Re-enqueues pending bin items whose job was lost (a killed worker, a permanently failed job).",
  limits: z.object({ max_items: z.number().int().positive().max(100_000).default(10_000) }),
  status: z.object({
    /** Per kind: how many items got a fresh job, whether its queue was busy, and the kind's own details. */
    kinds: z.record(z.string(), kindStatus),
    redispatched: z.number().int().nonnegative(),
    /** Kinds whose queue still had due jobs waiting for a worker (nothing added for them). */
    busy: z.array(z.string()),
  }),
  counts: (s) => ({ redispatched: s.redispatched, ...Object.fromEntries(Object.entries(s.kinds).map(([k, v]) => [k, v.redispatched])) }),
  async run({ helpers, limits, itemError }) {
    const { rows } = await helpers.query<{
      r: { kinds: Record<string, z.infer<typeof kindStatus>>; errors: { kind: string; error: string }[] };
    }>("select gk_private.bin_redispatch($1) as r", [limits.max_items]);
    const { kinds, errors } = rows[0].r;
    for (const e of errors) await itemError(e.kind, e.error);
    const list = Object.entries(kinds);
    return {
      kinds,
      redispatched: list.reduce((n, [, k]) => n + k.redispatched, 0),
      busy: list.filter(([, k]) => k.busy).map(([kind]) => kind),
    };
  },
});
