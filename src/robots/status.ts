// Robots in `groundskeeper status`: how the ECUs' last accepted version reports compare with the
// director's targets (gk_public.ecu_version_reports, written by gk_private.robot_manifest_accepted),
// per team, and the latest discrepancies: ECUs reporting an image the director's targets do not assign them.
import { formatAge } from "../bin/status.ts";
import { formatTable } from "../cli/format.ts";
import type { StatusSection } from "../cli/status/sections.ts";

export interface EcuReportCounts {
  team_name: string;
  matches: number;
  pending: number;
  discrepancies: number;
}

export interface EcuDiscrepancy {
  team_name: string;
  robot_id: string;
  robot_name: string;
  ecu_serial: string;
  reported: string;
  detail: string;
  age_seconds: number;
}

export interface EcuReportsStatus {
  teams: EcuReportCounts[];
  discrepancies: EcuDiscrepancy[];
}

/** The latest 20 discrepancies, newest first (ecu_version_reports_discrepancy_idx, migration 0154). */
export const LATEST_DISCREPANCIES = `
  select t.name as team_name, r.id as robot_id, r.name as robot_name, e.serial as ecu_serial,
         v.reported_filepath as reported, v.detail,
         extract(epoch from now() - v.received_at)::float8 as age_seconds
    from gk_public.ecu_version_reports v
    join gk_public.ecus e on e.id = v.ecu_id
    join gk_public.robots r on r.id = e.robot_id
    join gk_public.teams t on t.id = v.team_id
   where v.verdict = 'discrepancy'
   order by v.received_at desc
   limit 20`;

export const ecuReportsSection: StatusSection<EcuReportsStatus> = {
  name: "ecu_reports",
  title: "ECU version reports against the director's targets",
  async collect(db) {
    const teams = await db.query<EcuReportCounts>(`
      select t.name as team_name,
             count(*) filter (where v.verdict = 'matches')::int as matches,
             count(*) filter (where v.verdict = 'pending')::int as pending,
             count(*) filter (where v.verdict = 'discrepancy')::int as discrepancies
        from gk_public.ecu_version_reports v join gk_public.teams t on t.id = v.team_id
       group by t.id, t.name
       order by discrepancies desc, t.name
       limit 50`);
    const discrepancies = await db.query<EcuDiscrepancy>(LATEST_DISCREPANCIES);
    return { teams: teams.rows, discrepancies: discrepancies.rows };
  },
  render({ teams, discrepancies }) {
    if (!teams.length) return "none";
    const counts = formatTable(
      ["team", "matches", "pending", "discrepancies"],
      teams.map((t) => [t.team_name, String(t.matches), String(t.pending), String(t.discrepancies)]),
    );
    if (!discrepancies.length) return counts;
    const latest = formatTable(
      ["team", "robot", "ECU", "reports", "reported", "detail"],
      discrepancies.map((d) => [
        d.team_name,
        d.robot_name,
        d.ecu_serial,
        d.reported,
        `${formatAge(d.age_seconds)} ago`,
        d.detail.slice(0, 80),
      ]),
    );
    return `${counts}\n\nLatest discrepancies:\n${latest}`;
  },
};
