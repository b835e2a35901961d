// Cron: marks certificates and provisioning credentials whose not_after passed as expired.
// Two set-based statements (indexes on (status, not_after) and the live credentials' expires_at).
import { z } from "zod";
import { runActivation } from "../src/worker/reconciler.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ _cron: z.unknown().optional() }),
  async run(_payload, { helpers }) {
    await runActivation(helpers, "certificates__expire", async () => {
      const certs = await helpers.query<{ n: string }>("select gk_private.expire_certificates() as n");
      const creds = await helpers.query<{ n: string }>("select gk_private.expire_provisioning_credentials() as n");
      return { certificates_expired: Number(certs.rows[0].n), provisioning_credentials_expired: Number(creds.rows[0].n) };
    });
  },
});
