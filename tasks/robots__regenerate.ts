// Cron: the sweep of dirty robot certificates (sql/630_robots_certificates.sql) for robots that
// have not come by to read theirs. One transaction per batch: the dirty robots are locked with
// SKIP LOCKED (a robot's own read holding its lock goes on with it), and their replacements are
// requested in one statement through the ordinary request path (certificates__issue issues them
// in bulk). Then replaced certificates past the grace period are superseded.
import { z } from "zod";
import { spkiOfPem } from "../src/robots/certificate.ts";
import { inJobTransaction } from "../src/worker/tx.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

const count = z.number().int().nonnegative();

export default defineReconciler({
  name: "robots__regenerate",
  schedule: "*/5 * * * *",
  description: "Requests new certificates for robots whose certificate is dirty, and revokes replaced ones past the grace period.",
  limits: z.object({
    max_robots: z.number().int().positive().max(10_000).default(1000),
    /** How long a replaced certificate stays valid when its replacement is never downloaded. */
    grace_hours: z
      .number()
      .positive()
      .max(24 * 365)
      .default(7 * 24),
    max_superseded: z.number().int().positive().max(100_000).default(5000),
  }),
  status: z.object({
    dirty: count,
    requested: count,
    already_requested: count,
    superseded: count,
    requested_robot_ids: z.array(z.string()),
  }),
  async run({ helpers, limits, again }) {
    const batch = await inJobTransaction(helpers, async (c) => {
      const due = await c.query<{ robot_id: string; has_key: boolean; pem: string | null }>(
        "select robot_id, has_key, pem from gk_private.robots_certificates_due($1)",
        [limits.max_robots],
      );
      if (due.rows.length === 0) return { dirty: 0, requested: [] as string[], already: 0 };
      // A certificate whose key the CA made is replaced for the same key, taken from its PEM.
      const keys = due.rows.map((r) => (!r.has_key && r.pem ? spkiOfPem(r.pem) : null));
      const { rows } = await c.query<{ robot_id: string; requested: boolean }>(
        "select robot_id, requested from gk_private.robots_certificate_replacements($1::uuid[], $2::text[])",
        [due.rows.map((r) => r.robot_id), keys],
      );
      return {
        dirty: due.rows.length,
        requested: rows.filter((r) => r.requested).map((r) => r.robot_id),
        already: rows.filter((r) => !r.requested).length,
      };
    });
    const superseded = await helpers.query<{ n: string }>("select gk_private.robots_certificates_supersede($1::interval, $2) as n", [
      `${limits.grace_hours} hours`,
      limits.max_superseded,
    ]);
    // A full batch of new requests means more may be waiting; requested ones stay dirty until issued.
    if (batch.requested.length === limits.max_robots) again(5);
    return {
      dirty: batch.dirty,
      requested: batch.requested.length,
      already_requested: batch.already,
      superseded: Number(superseded.rows[0].n),
      requested_robot_ids: batch.requested.slice(0, 100),
    };
  },
});
