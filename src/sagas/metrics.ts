// Prometheus: sagas in progress by name and state, the oldest one's age, failing undos.
import type { MetricCollector } from "../server/metrics.ts";
import type { SagaSummary } from "./status.ts";

export const sagaMetrics: MetricCollector = {
  name: "sagas",
  async collect({ db, gauge }) {
    const { rows } = await db.query<SagaSummary>("select * from gk_public.saga_summary");
    const count = gauge("gk_sagas_in_progress", "Sagas running or unwinding, by saga and state", ["saga", "state"]);
    const oldest = gauge("gk_sagas_oldest_age_seconds", "Age of the oldest saga in progress, by saga and state", ["saga", "state"]);
    const undo = gauge("gk_sagas_undo_failing", "Sagas whose last undo attempt failed (retried with backoff), by saga", ["saga"]);
    const failing = new Map<string, number>();
    for (const r of rows) {
      count.set({ saga: r.name, state: r.state }, r.sagas);
      oldest.set({ saga: r.name, state: r.state }, r.oldest_age_seconds);
      failing.set(r.name, (failing.get(r.name) ?? 0) + r.undo_failing);
    }
    for (const [saga, n] of failing) undo.set({ saga }, n);
  },
};
