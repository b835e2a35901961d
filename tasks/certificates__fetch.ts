// Fetches an issued certificate from the CA by its handle (download_certificate asked for it):
// stores the PEM, and the serial when an asynchronous CA only tells it now.
import { z } from "zod";
import { requireService } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ id: z.uuid() }).strict(),
  async run({ id }, { services, helpers }) {
    const ca = requireService(services, "ca");
    const { rows } = await helpers.query<{ ca_ref: string; pem: string | null }>(
      "select ca_ref, pem from gk_public.certificates where id = $1 and status = 'issued'",
      [id],
    );
    if (!rows[0] || rows[0].pem != null) return;
    const res = await ca.fetch(rows[0].ca_ref);
    if (res.status === "pending") throw new Error(`certificate ${id} is not issued by the CA yet; retrying`);
    if (res.status === "failed") throw new Error(`the CA has no certificate for ${id}: ${res.reason}`);
    await helpers.query("select gk_private.certificate_fetched($1, $2, $3, $4, $5)", [
      id,
      res.pem,
      res.serial,
      res.notAfter,
      res.notBefore ?? null,
    ]);
  },
});
