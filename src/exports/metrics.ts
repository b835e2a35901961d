// Prometheus: export records by state, export nodes by state, live exports per node.
import type { MetricCollector } from "../server/metrics.ts";

const STATES = ["requested", "assigning", "live", "deleting"];

export const exportsMetrics: MetricCollector = {
  name: "exports",
  async collect({ db, gauge }) {
    const records = gauge("gk_exports", "Export records that are not deleted, by state", ["state"]);
    const doomed = gauge(
      "gk_exports_marked_for_deletion",
      "Export records marked for deletion (resource gone, node expunged, attachment lost)",
      [],
    );
    const nodes = gauge("gk_export_nodes", "Export nodes by state (stale: in service, heartbeat expired)", ["state"]);
    const live = gauge("gk_export_node_live_exports", "Live exports per in-service export node", ["node"]);
    for (const state of STATES) records.set({ state }, 0);
    for (const state of ["in_service", "stale", "expunged"]) nodes.set({ state }, 0);
    let d = 0;
    const r = await db.query<{ state: string; doomed: boolean; exports: number }>(
      "select state, doomed, exports from gk_public.export_counts",
    );
    const byState = new Map<string, number>();
    for (const row of r.rows) {
      byState.set(row.state, (byState.get(row.state) ?? 0) + row.exports);
      if (row.doomed) d += row.exports;
    }
    for (const [state, count] of byState) records.set({ state }, count);
    doomed.set({}, d);
    const n = await db.query<{ id: string; worker_name: string | null; state: string; fresh: boolean; live_exports: number }>(
      "select id, worker_name, state, fresh, live_exports from gk_public.export_node_load",
    );
    const byNode = new Map<string, number>();
    for (const row of n.rows) {
      const s = row.state === "in_service" && !row.fresh ? "stale" : row.state;
      byNode.set(s, (byNode.get(s) ?? 0) + 1);
      if (row.state === "in_service") live.set({ node: row.worker_name ?? row.id }, row.live_exports);
    }
    for (const [state, count] of byNode) nodes.set({ state }, count);
  },
};
