// Prometheus: how long until each team's published TUF roles expire. A client refuses a
// repository whose timestamp (or snapshot, targets, a bin, root) has expired, so an expiring
// timestamp is the most urgent TUF outage. The expiry is that of the newest *uploaded* version
// (what clients see), so a blob store that stopped accepting uploads shows here while the
// signed-but-pending versions look fine. Bins are reported as one series (the soonest bin).
// Also: how long each team's publish has been failing, and how many attempts failed.
import type { MetricCollector } from "../server/metrics.ts";

export const tufExpiryMetrics: MetricCollector = {
  name: "tuf",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{ team: string; role: string; seconds: number }>(`
      with published as (
        select distinct on (m.team_id, m.role) m.team_id, m.role, m.expires
          from gk_public.tuf_metadata m
         where m.uploaded_at is not null
         order by m.team_id, m.role, m.version desc)
      select t.name as team, case when p.role like 'bins-%' then 'bins' else p.role end as role,
             extract(epoch from min(p.expires) - now())::float8 as seconds
        from published p join gk_public.teams t on t.id = p.team_id
       group by 1, 2`);
    const expiry = gauge(
      "gk_tuf_role_expiry_seconds",
      "Seconds until the published version of a team's TUF role expires (bins: the soonest bin; negative: expired)",
      ["team", "role"],
    );
    for (const r of rows) expiry.set({ team: r.team, role: r.role }, r.seconds);

    // A publish that keeps failing (tuf_publish_failed): the repository stays dirty and its
    // timestamp runs out, so alert on this before the expiry above goes negative.
    const failing = await db.query<{ team: string; seconds: number; failures: number }>(`
      select t.name as team, p.publish_failures as failures,
             coalesce(extract(epoch from now() - p.publish_failing_since), 0)::float8 as seconds
        from gk_public.tuf_repositories p join gk_public.teams t on t.id = p.team_id`);
    const since = gauge(
      "gk_tuf_publish_failing_seconds",
      "Seconds since a team's TUF publish started failing (0: the last publish succeeded)",
      ["team"],
    );
    const failures = gauge("gk_tuf_publish_failures", "Failed TUF publish attempts of a team since its last success", ["team"]);
    for (const r of failing.rows) {
      since.set({ team: r.team }, r.seconds);
      failures.set({ team: r.team }, r.failures);
    }
  },
};
