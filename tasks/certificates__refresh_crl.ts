// Cron: keeps the CA's CRL fresh on a schedule (the CA regenerates it when revocations made it
// stale or it is ageing), so a revocation burst costs one signature and readers never see an
// expired CRL even when nobody asked for it in a while. `refreshed` says whether a new CRL was
// made. A CA without a CRL to refresh (cfssl 1.2 has no CRL endpoint) is a fact of the
// deployment, not a failure: the activation succeeds with crl "unsupported" and the reason.
import { z } from "zod";
import { CaUnsupportedError } from "../src/adapters/ca/types.ts";
import { requireService } from "../src/services.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

export default defineReconciler({
  name: "certificates__refresh_crl",
  description: "Regenerates the CA's CRL when revocations made it stale or it is ageing.",
  status: z.object({
    refreshed: z.number().int().min(0).max(1),
    /** regenerated: a new CRL; current: nothing to do; unsupported: this CA has no CRL to refresh. */
    crl: z.enum(["regenerated", "current", "unsupported"]),
    unsupported_reason: z.string().optional(),
  }),
  async run({ services }) {
    const ca = requireService(services, "ca");
    if (!ca.refreshCrl)
      return { refreshed: 0, crl: "unsupported" as const, unsupported_reason: `the ${ca.kind} CA adapter has no CRL refresh` };
    try {
      const { refreshed } = await ca.refreshCrl();
      return { refreshed: refreshed ? 1 : 0, crl: refreshed ? ("regenerated" as const) : ("current" as const) };
    } catch (e) {
      if (e instanceof CaUnsupportedError) return { refreshed: 0, crl: "unsupported" as const, unsupported_reason: e.message };
      throw e;
    }
  },
});
