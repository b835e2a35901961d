// Prometheus: the bin's length, failing and overdue items and oldest age by kind (a collector run at every
// /metrics scrape). Every registered kind (gk_public.bin_kinds) reports, 0 when empty, so alerts
// on "length > 0 for 1h" resolve and a new kind shows up without a change here.
import type { MetricCollector } from "../server/metrics.ts";

export const binMetrics: MetricCollector = {
  name: "bin",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{ kind: string; length: number; failing: number; overdue: number; oldest_age_seconds: number | null }>(
      `select k.kind, coalesce(s.length, 0) as length, coalesce(s.failing, 0) as failing, coalesce(s.overdue, 0) as overdue,
              s.oldest_age_seconds
         from gk_public.bin_kinds k left join gk_public.bin_summary s on s.kind = k.kind`,
    );
    const length = gauge("gk_bin_length", "Pending deletions in the bin, by kind", ["kind"]);
    const failing = gauge("gk_bin_failing", "Pending deletions whose last attempt failed, by kind", ["kind"]);
    // Past their lease with no live task and no recorded error: what an outage that took the
    // workers' own recording down looks like (failing stays 0 then).
    const overdue = gauge("gk_bin_overdue", "Pending deletions past their lease or next attempt (no live task holds them), by kind", [
      "kind",
    ]);
    const oldest = gauge("gk_bin_oldest_age_seconds", "Age of the oldest pending deletion, by kind", ["kind"]);
    for (const r of rows) {
      length.set({ kind: r.kind }, r.length);
      failing.set({ kind: r.kind }, r.failing);
      overdue.set({ kind: r.kind }, r.overdue);
      oldest.set({ kind: r.kind }, r.oldest_age_seconds ?? 0);
    }
  },
};
