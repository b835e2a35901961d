// /metrics: concurrent scrapes each get every series; the exposition passes `promtool check
// metrics` (Debian's prometheus package) with standard process/nodejs names; HTTP requests by
// route with bounded labels; TUF expiry per team and role; CRL age; gk_build_info.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { areaServerParts } from "../src/areas.ts";
import type { MetricCollector } from "../src/server/metrics.ts";
import { fromPool } from "../src/tuf/db.ts";
import { initRepository } from "../src/tuf/init.ts";
import { publishTeam } from "../src/tuf/publish.ts";
import { localCa } from "./certificates/helpers/ca-fixtures.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";
import { testServices } from "./helpers/jobs.ts";
import { needs } from "./helpers/requirements.ts";
import { TestFsBlobStore } from "./tuf/helpers/fs-blobs.ts";
import { box, tmpDir } from "./tuf/helpers/tuf.ts";

const db = await createTestDb();
const blobs = new TestFsBlobStore(tmpDir("metrics-blobs"));
await db.query("insert into gk_public.teams (name) values ('metrics-team')");
const repo = await initRepository(fromPool(db.pool), box, {
  team: "metrics-team",
  keysDir: tmpDir("metrics"),
  keys: 1,
  threshold: 1,
  bins: 4,
});
await publishTeam(fromPool(db.pool), box, blobs, repo.teamId);
const ca = localCa(db, "metrics-ca");
await ca.crlPem(); // the built-in CA issues its first CRL

// Two collectors whose queries take turns being slow: the second scrape starts while the first
// is still waiting for its slow collector, which is where a shared, reset registry lost series.
let calls = 0;
const turnTaking: MetricCollector[] = [
  {
    name: "quick_then_slow",
    async collect({ db: q, gauge }) {
      await q.query("select pg_sleep($1)", [calls++ === 0 ? 0 : 0.6]);
      gauge("gk_test_first", "set by the first collector", ["n"]).set({ n: "1" }, 1);
    },
  },
  {
    name: "slow",
    async collect({ db: q, gauge }) {
      await q.query("select pg_sleep(0.4)");
      gauge("gk_test_second", "set by the second collector").set(2);
    },
  },
];
const turns = await httpGraphql(db, { collectors: turnTaking });
const api = await httpGraphql(db, { services: testServices({ blobs, ca }), ...areaServerParts() });

const scrape = async (url: string) => {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, text: await res.text() };
};

describe("/metrics", () => {
  it("gives each of two concurrent scrapes every series", async () => {
    const first = scrape(turns.url);
    await new Promise((r) => setTimeout(r, 200));
    const second = scrape(turns.url);
    for (const s of await Promise.all([first, second])) {
      expect(s.status).toBe(200);
      expect(s.text).toContain('gk_test_first{n="1"} 1');
      expect(s.text).toContain("gk_test_second 2");
    }
  });

  it.runIf(needs("promtool"))("passes promtool check metrics", async () => {
    await fetch(`${api.url}/graphql`); // one request, so the HTTP series exist
    const { status, text } = await scrape(api.url);
    expect(status).toBe(200);
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(`${check.stdout}${check.stderr}`.trim()).toBe("");
    expect(check.status).toBe(0);
  });

  it("uses the client library's standard names and reports build, HTTP, TUF and CRL series", async () => {
    await fetch(`${api.url}/livez`);
    await fetch(`${api.url}/tuf/metrics-team/metadata/timestamp.json`);
    await fetch(`${api.url}/tuf/metrics-team/metadata/no-such-file-${Date.now()}.json`);
    const { text } = await scrape(api.url);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(text).not.toContain("gk_process_");
    expect(text).toMatch(/^gk_build_info\{version="\d+\.\d+\.\d+",commit="[^"]+",node_version="v\d+[^"]*"\} 1$/m);
    expect(text).toMatch(/^gk_http_requests_total\{route="\/livez",method="GET",code="200"\} \d+$/m);
    expect(text).toMatch(/^gk_http_requests_total\{route="\/tuf\/",method="GET",code="404"\} 1$/m);
    expect(text).toMatch(/^gk_http_request_duration_seconds_count\{route="\/tuf\/",method="GET"\} 2$/m);
    expect(text).not.toMatch(/route="\/tuf\/metrics-team/);
    for (const role of ["root", "targets", "snapshot", "timestamp", "bins"]) {
      const m = new RegExp(`^gk_tuf_role_expiry_seconds\\{team="metrics-team",role="${role}"\\} (\\S+)$`, "m").exec(text);
      expect(m, role).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
    }
    // timestamp (1 day) expires before snapshot (7 days) by default
    const seconds = (role: string) => Number(new RegExp(`role="${role}"\\} (\\S+)`).exec(text)![1]);
    expect(seconds("timestamp")).toBeLessThan(seconds("snapshot"));
    expect(text).toMatch(/^gk_crl_age_seconds\{authority="metrics-ca"\} \d/m);
    expect(text).toMatch(/^gk_crl_next_update_seconds\{authority="metrics-ca"\} \d/m);
    expect(text).toMatch(/^gk_jobs_failed\{task="tuf__publish"\} 0$/m);
  });
});
