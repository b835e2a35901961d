// Prometheus: workers by state, volumes by state, what the agents report on disk.
import type { MetricCollector } from "../server/metrics.ts";

const WORKER_STATES = ["running", "stalled", "landing", "landed", "retiring"];
const VOLUME_STATES = ["creating", "created", "destroying", "failed"];

export const volumesMetrics: MetricCollector = {
  name: "volumes",
  async collect({ db, gauge }) {
    const workers = gauge("gk_workers", "Build workers by state", ["state"]);
    const volumes = gauge("gk_volumes", "Volumes by state (all workers)", ["state"]);
    const missing = gauge("gk_volumes_missing", "Volumes the agents no longer report (removed after a grace period)", []);
    const dead = gauge("gk_worker_dead_volumes", "Entries still under an agent's dead/ directory, by worker", ["worker"]);
    for (const state of WORKER_STATES) workers.set({ state }, 0);
    for (const state of VOLUME_STATES) volumes.set({ state }, 0);
    const w = await db.query<{ name: string; state: string; dead_volumes: number | null }>(
      "select name, state, dead_volumes from gk_public.workers",
    );
    const counts = new Map<string, number>();
    for (const r of w.rows) {
      counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
      dead.set({ worker: r.name }, r.dead_volumes ?? 0);
    }
    for (const [state, n] of counts) workers.set({ state }, n);
    const v = await db.query<{ state: string; volumes: number; missing: number }>(
      "select state, sum(volumes)::int as volumes, sum(missing)::int as missing from gk_public.volume_counts group by state",
    );
    let m = 0;
    for (const r of v.rows) {
      volumes.set({ state: r.state }, r.volumes);
      m += r.missing;
    }
    missing.set({}, m);
  },
};
