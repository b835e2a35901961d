// Cron: keeps the CA's CRL fresh on a schedule (the CA regenerates it when revocations made it
// stale or it is ageing), so a revocation burst costs one signature and readers never see an
// expired CRL even when nobody asked for it in a while.
import { z } from "zod";
import { requireService } from "../src/services.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

export default defineReconciler({
  name: "certificates__refresh_crl",
  schedule: "*/10 * * * *",
  description: "Regenerates the CA's CRL when revocations made it stale or it is ageing.",
  status: z.object({ refreshed: z.number().int().min(0).max(1) }),
  async run({ services }) {
    const ca = requireService(services, "ca");
    if (!ca.refreshCrl) return { refreshed: 0 };
    await ca.refreshCrl();
    return { refreshed: 1 };
  },
});
