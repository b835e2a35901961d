// TUF in `groundskeeper status`: every repository with its dirty roles, pending uploads, when the
// published timestamp expires, and a publish that keeps failing (since when, why).
import { formatAge } from "../bin/status.ts";
import { formatTable } from "../cli/format.ts";
import type { StatusSection } from "../cli/status/sections.ts";

export interface TufRepositoryStatus {
  team_name: string;
  dirty_roles: number;
  pending_uploads: number;
  timestamp_expires_in_seconds: number | null;
  failing_seconds: number | null;
  publish_failures: number;
  last_publish_error: string | null;
}

export const tufSection: StatusSection<TufRepositoryStatus[]> = {
  name: "tuf",
  title: "TUF repositories",
  async collect(db) {
    const { rows } = await db.query<TufRepositoryStatus>(`
      select team_name, dirty_roles::int, pending_uploads::int,
             extract(epoch from timestamp_expires - now())::float8 as timestamp_expires_in_seconds,
             extract(epoch from now() - publish_failing_since)::float8 as failing_seconds,
             publish_failures, last_publish_error
        from gk_public.tuf_repository_status
       order by publish_failing_since nulls last, team_name
       limit 50`);
    return rows;
  },
  render(rows) {
    if (!rows.length) return "none";
    return formatTable(
      ["team", "dirty", "pending", "timestamp expires in", "publish failing", "error"],
      rows.map((r) => [
        r.team_name,
        String(r.dirty_roles),
        String(r.pending_uploads),
        r.timestamp_expires_in_seconds === null ? "-" : formatAge(r.timestamp_expires_in_seconds),
        r.failing_seconds === null ? "no" : `for ${formatAge(r.failing_seconds)} (${r.publish_failures} attempts)`,
        (r.last_publish_error ?? "-").slice(0, 80),
      ]),
    );
  },
};
