// Cron: marks certificates and provisioning credentials whose not_after passed as expired.
// Two set-based statements (indexes on (status, not_after) and the live credentials' expires_at).
import { z } from "zod";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

export default defineReconciler({
  name: "certificates__expire",
  schedule: "*/5 * * * *",
  description: "Marks certificates and provisioning credentials whose not_after passed as expired.",
  status: z.object({ certificates_expired: count, provisioning_credentials_expired: count }),
  async run({ helpers }) {
    const certs = await helpers.query<{ n: string }>("select gk_private.expire_certificates() as n");
    const creds = await helpers.query<{ n: string }>("select gk_private.expire_provisioning_credentials() as n");
    return { certificates_expired: Number(certs.rows[0].n), provisioning_credentials_expired: Number(creds.rows[0].n) };
  },
});
