// `groundskeeper status`: workers (state, heartbeat, volumes on disk) and volumes by state.
import { formatTable } from "../cli/format.ts";
import type { StatusSection } from "../cli/status/sections.ts";

export interface VolumesStatus {
  workers: { name: string; state: string; heartbeat_age_s: number | null; live_volumes: number | null; dead_volumes: number | null }[];
  volumes: { state: string; volumes: number; missing: number; failing: number }[];
}

export const volumesSection: StatusSection<VolumesStatus> = {
  name: "volumes",
  title: "Workers and volumes",
  async collect(db) {
    const workers = await db.query(
      `select name, state, extract(epoch from now() - last_heartbeat_at)::int as heartbeat_age_s, live_volumes, dead_volumes
         from gk_public.workers order by name limit 200`,
    );
    const volumes = await db.query(
      `select state, sum(volumes)::int as volumes, sum(missing)::int as missing, sum(failing)::int as failing
         from gk_public.volume_counts group by state order by state`,
    );
    return { workers: workers.rows, volumes: volumes.rows };
  },
  render({ workers, volumes }) {
    if (workers.length === 0) return "no workers enrolled";
    const w = formatTable(
      ["worker", "state", "heartbeat", "live on disk", "dead on disk"],
      workers.map((r) => [
        r.name,
        r.state,
        r.heartbeat_age_s == null ? "-" : `${r.heartbeat_age_s}s ago`,
        String(r.live_volumes ?? "-"),
        String(r.dead_volumes ?? "-"),
      ]),
    );
    const v = volumes.length
      ? formatTable(
          ["state", "volumes", "missing", "failing"],
          volumes.map((r) => [r.state, String(r.volumes), String(r.missing), String(r.failing)]),
        )
      : "no volumes";
    return `${w}\n${v}`;
  },
};
