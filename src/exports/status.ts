// `groundskeeper status`: export nodes (state, heartbeat, live exports) and export records by state.
import { formatTable } from "../cli/format.ts";
import type { StatusSection } from "../cli/status/sections.ts";

export interface ExportsStatus {
  nodes: { worker_name: string | null; address: string; state: string; heartbeat_age_s: number; fresh: boolean; live_exports: number }[];
  records: { state: string; doomed: boolean; exports: number }[];
}

export const exportsSection: StatusSection<ExportsStatus> = {
  name: "exports",
  title: "Export nodes and exports",
  async collect(db) {
    const nodes = await db.query(
      `select worker_name, address, state, extract(epoch from now() - last_heartbeat_at)::int as heartbeat_age_s, fresh, live_exports
         from gk_public.export_node_load order by state, worker_name limit 200`,
    );
    const records = await db.query("select state, doomed, exports from gk_public.export_counts order by state, doomed");
    return { nodes: nodes.rows, records: records.rows };
  },
  render({ nodes, records }) {
    if (nodes.length === 0 && records.length === 0) return "no export nodes, no exports";
    const n = nodes.length
      ? formatTable(
          ["node", "address", "state", "heartbeat", "live exports"],
          nodes.map((r) => [
            r.worker_name ?? "-",
            r.address,
            r.state,
            `${r.heartbeat_age_s}s ago${r.fresh ? "" : " (stale)"}`,
            String(r.live_exports),
          ]),
        )
      : "no export nodes";
    const e = records.length
      ? formatTable(
          ["state", "marked for deletion", "exports"],
          records.map((r) => [r.state, r.doomed ? "yes" : "no", String(r.exports)]),
        )
      : "no exports";
    return `${n}\n${e}`;
  },
};
