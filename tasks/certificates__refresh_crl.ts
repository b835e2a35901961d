// Cron: keeps the CA's CRL fresh on a schedule (the CA regenerates it when revocations made it
// stale or it is ageing), so a revocation burst costs one signature and readers never see an
// expired CRL even when nobody asked for it in a while.
import { z } from "zod";
import { requireService } from "../src/services.ts";
import { runActivation } from "../src/worker/reconciler.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ _cron: z.unknown().optional() }),
  async run(_payload, { services, helpers }) {
    const ca = requireService(services, "ca");
    await runActivation(helpers, "certificates__refresh_crl", async () => {
      if (!ca.refreshCrl) return { refreshed: 0 };
      await ca.refreshCrl();
      return { refreshed: 1 };
    });
  },
});
