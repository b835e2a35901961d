// Prometheus: the age of the CRL and the time left until its nextUpdate. Relying parties reject
// a CRL past nextUpdate, and a CRL that is old while revocations happen means they are not
// published. Only the built-in CA (GK_CA=local) keeps its CRL in the database; an external CA
// publishes its own.
import type { MetricCollector } from "../server/metrics.ts";

export const crlMetrics: MetricCollector = {
  name: "crl",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{ authority: string; age: number; next_update: number }>(`
      select name as authority,
             extract(epoch from now() - crl_this_update)::float8 as age,
             extract(epoch from crl_next_update - now())::float8 as next_update
        from gk_private.local_ca_authorities
       where crl_this_update is not null`);
    const age = gauge("gk_crl_age_seconds", "Seconds since the built-in CA's current CRL was issued (thisUpdate)", ["authority"]);
    const next = gauge("gk_crl_next_update_seconds", "Seconds until the built-in CA's current CRL reaches nextUpdate (negative: past it)", [
      "authority",
    ]);
    for (const r of rows) {
      age.set({ authority: r.authority }, r.age);
      next.set({ authority: r.authority }, r.next_update);
    }
  },
};
