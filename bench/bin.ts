// Benchmark (issue 3): delete one team with 10,000 robots (each with a certificate), 1,000
// provisioning credentials (2 certificates each) and 100,000 blob objects; time until the bin is
// zero. Side by side in the same run: (a) as many no-op graphile-worker jobs as there are bin items,
// (b) the bare CA revocations in a loop; and the team DELETE statement (triggers + cascades) against
// the same cascade with our triggers disabled; and `rm -rf` of a copy of the team's blob tree
// against the prefix purge's own time inside the drain (target: the purge at ≥ 0.7× rm's rate).
//   node bench/bin.ts                    the local server on 5432 if it answers, else an embedded PostgreSQL
//   DATABASE_URL=postgres://… node bench/bin.ts   a scratch database on that server
//   BENCH_SCALE=0.1 node bench/bin.ts    a tenth of the sizes (quick check)
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { FsBlobStore } from "../src/adapters/blobs/fs.ts";
import { LocalCa } from "../src/adapters/ca/local.ts";
import { SCALE } from "./lib/scale.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";
import { createPool } from "../src/db/pool.ts";
import { SecretBox } from "../src/lib/secrets.ts";
import { startWorker } from "../src/worker/runner.ts";

// (BENCH_SCALE: bench/lib/scale.ts)
const ROBOTS = Math.round(10_000 * SCALE);
const CREDS = Math.round(1_000 * SCALE);
const OBJECTS = Math.round(100_000 * SCALE);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bench-purge-"));
fs.chmodSync(tmp, 0o755);
const scratch = await scratchDatabase();
const url = scratch.url;

const results: Record<string, number> = {};
try {
  const pool = createPool(url, 12);
  const q = (sql: string, params?: unknown[]) => pool.query(sql, params);
  // One master key for the CA and the worker: private keys the CA generates (provisioning
  // credentials) are parked sealed under it, so a worker without it cannot finish issuance.
  const secrets = new SecretBox(crypto.randomBytes(32));
  const ca = new LocalCa(pool, secrets, { name: "bench", crlDebounceMs: 10_000 });
  const blobs = new FsBlobStore(path.join(tmp, "blobs"));
  const services = { log: pino({ level: "silent" }), ca, blobs, secrets };
  const runner = await startWorker({ databaseUrl: url, services, concurrency: CONCURRENCY, cron: false });
  const pgVersion = (await q("show server_version")).rows[0].server_version;

  async function waitFor(sql: string, label: string) {
    for (let i = 0; ; i++) {
      const { rows } = await q(sql);
      if (rows[0].n === 0) return;
      if (i % 100 === 0) log(`${label}: ${rows[0].n} left`);
      await sleep(20);
    }
  }

  // ---- set-up (not timed for the ratios) ----
  async function makeTeam(name: string): Promise<string> {
    const { rows } = await q("insert into gk_public.teams (name) values ($1) returning id", [name]);
    await q("insert into gk_public.robots (team_id, name) select $1, 'r' || g from generate_series(1, $2) g", [rows[0].id, ROBOTS]);
    return rows[0].id;
  }
  log(`set-up: ${ROBOTS} robots, ${CREDS} credentials, ${OBJECTS} objects (scale ${SCALE})`);
  const teamA = await makeTeam("bench-a");
  let t = now();
  await q("select gk_public.request_certificate(r.id) from gk_public.robots r where r.team_id = $1", [teamA]);
  await q("select gk_public.create_provisioning_credential($1, 'c' || g) from generate_series(1, $2) g", [teamA, CREDS]);
  await waitFor("select count(*)::int as n from gk_public.certificates where status = 'issuing'", "issuing at the CA");
  results.issue_ms = now() - t;
  const certCount = (
    await q("select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status = 'issued'", [teamA])
  ).rows[0].n;
  log(`issued ${certCount} certificates in ${(results.issue_ms / 1000).toFixed(1)} s`);

  // Team B: the same shape for the DELETE comparison (rows only; its DELETEs are rolled back).
  const teamB = await makeTeam("bench-b");
  await q(
    `insert into gk_public.certificates (owner_team_id, robot_id, profile, status, ca_ref, serial, not_after)
     select r.team_id, r.id, 'robot', 'issued', 'ref', 'ab', now() + interval '1 year' from gk_public.robots r where r.team_id = $1`,
    [teamB],
  );
  await q(
    "insert into gk_public.provisioning_credentials (team_id, name, status, expires_at) select $1, 'c' || g, 'issued', now() + interval '1 year' from generate_series(1, $2) g",
    [teamB, CREDS],
  );
  await q(
    `insert into gk_public.certificates (owner_team_id, provisioning_credential_id, profile, status, ca_ref, serial, not_after)
     select p.team_id, p.id, x, 'issued', 'ref', 'ab', now() + interval '1 year'
       from gk_public.provisioning_credentials p, unnest(array['client_auth', 'provisioning']) x where p.team_id = $1`,
    [teamB],
  );

  t = now();
  const prefix = `teams/${teamA}/`;
  const key = (i: number) => `objects/${String(i % 100).padStart(2, "0")}/${String(i).padStart(7, "0")}`;
  async function fill(store: FsBlobStore, under: string) {
    for (let i = 0; i < OBJECTS; i += 256) {
      await Promise.all(Array.from({ length: Math.min(256, OBJECTS - i) }, (_, j) => store.put(`${under}${key(i + j)}`, "x")));
    }
  }
  await fill(blobs, prefix);
  log(`wrote ${OBJECTS} objects in ${((now() - t) / 1000).toFixed(1)} s`);

  // ---- rm -rf of the same tree (written the same way, in another store), the bare cost ----
  const copy = new FsBlobStore(path.join(tmp, "rm-copy"));
  await fill(copy, "tree/");
  spawnSync("sync");
  t = now();
  const rm = spawnSync("rm", ["-rf", path.join(tmp, "rm-copy", "objects", "tree")]);
  results.rm_rf_ms = now() - t;
  if (rm.status !== 0) throw new Error(`rm -rf failed: ${rm.stderr}`);
  log(`rm -rf of ${OBJECTS} objects: ${(results.rm_rf_ms / 1000).toFixed(2)} s`);

  // Certificates for (b), at a second CA so that (b) revokes fresh serials like the drain does.
  const bareCa = new LocalCa(pool, new SecretBox(crypto.randomBytes(32)), { name: "bench-bare", crlDebounceMs: 10_000 });
  const bareSerials: string[] = [];
  for (let i = 0; i < certCount; i += 16) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(16, certCount - i) }, (_, j) =>
        bareCa.issue({ commonName: `bare-${i + j}`, profile: "robot", notAfter: new Date(Date.now() + 365 * 86400_000) }),
      ),
    );
    bareSerials.push(...batch.map((b) => b.serial!));
  }
  await q("vacuum analyze");

  // ---- DELETE statement: with our triggers vs the same cascade without them (rolled back) ----
  async function timedDelete(team: string, withTriggers: boolean): Promise<number> {
    const c = await pool.connect();
    try {
      await c.query("begin");
      if (!withTriggers) {
        await c.query(
          "alter table gk_public.certificates disable trigger _100_lifecycle, disable trigger _500_enqueue_revocations, disable trigger _500_enqueue_issuance",
        );
        await c.query("alter table gk_public.provisioning_credentials disable trigger _500_revoke_certificates");
        await c.query("alter table gk_public.teams disable trigger _500_purge_blobs");
        // Without the trigger the invariant's CHECK would (rightly) refuse ownerless live rows.
        await c.query("alter table gk_public.certificates drop constraint certificates_live_has_owner");
      }
      const t0 = now();
      await c.query("delete from gk_public.teams where id = $1", [team]);
      const ms = now() - t0;
      await c.query("rollback");
      return ms;
    } finally {
      c.release();
    }
  }
  const plain: number[] = [];
  const triggered: number[] = [];
  for (let i = 0; i < 3; i++) {
    plain.push(await timedDelete(teamB, false));
    triggered.push(await timedDelete(teamB, true));
  }
  results.delete_plain_ms = Math.min(...plain);
  results.delete_triggered_ms = Math.min(...triggered);
  log(
    `DELETE team: plain ${plain.map((x) => x.toFixed(0)).join("/")} ms, with triggers ${triggered.map((x) => x.toFixed(0)).join("/")} ms`,
  );

  // ---- (a) no-op jobs, as many as there will be bin items ----
  const items = certCount + 1;
  t = now();
  await q("select gk_private.enqueue_many('system__noop', array(select '{}'::jsonb from generate_series(1, $1)))", [items]);
  await waitFor(
    "select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id where t.identifier = 'system__noop'",
    "no-op jobs",
  );
  results.noop_jobs_ms = now() - t;
  log(`(a) ${items} no-op jobs: ${(results.noop_jobs_ms / 1000).toFixed(2)} s`);

  // ---- (b) bare CA revocations in a loop ----
  t = now();
  for (const s of bareSerials) await bareCa.revoke(s, "cessationOfOperation");
  results.bare_revocations_ms = now() - t;
  log(`(b) ${bareSerials.length} bare revocations: ${(results.bare_revocations_ms / 1000).toFixed(2)} s`);

  // ---- the real thing: delete team A (committed) and time until the bin is zero ----
  t = now();
  await q("delete from gk_public.teams where id = $1", [teamA]);
  results.delete_real_ms = now() - t;
  const tDrain = now();
  await waitFor("select coalesce(sum(length), 0)::int as n from gk_public.bin_summary", "bin");
  results.drain_ms = now() - tDrain;
  log(`drain: ${(results.drain_ms / 1000).toFixed(2)} s`);
  const { rows: purge } = await q(
    "select extract(epoch from completed_at - enqueued_at) * 1000 as ms, progress_count from gk_public.purge_items where team_id = $1",
    [teamA],
  );
  results.purge_ms = Number(purge[0].ms);
  if (Number(purge[0].progress_count) !== OBJECTS) throw new Error(`purge counted ${purge[0].progress_count}, expected ${OBJECTS}`);

  // Check the outcome, not just the clock.
  const revoked = (
    await q("select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status = 'revoked'", [teamA])
  ).rows[0].n;
  const left = await blobs.list(prefix, { limit: 1 });
  const crl = await ca.crlPem();
  if (revoked !== certCount || left.keys.length > 0)
    throw new Error(`drain incomplete: ${revoked}/${certCount} revoked, blobs left: ${left.keys.length}`);
  const onCa = (await q("select count(*)::int as n from gk_private.local_ca_certificates where authority = 'bench' and status = 'revoked'"))
    .rows[0].n;
  if (onCa !== certCount) throw new Error(`CA has ${onCa} revoked, expected ${certCount}`);

  await runner.stop();
  await pool.end();

  const baseline = Math.max(results.noop_jobs_ms, results.bare_revocations_ms);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, PostgreSQL ${pgVersion} (${scratch.where}), worker concurrency ${CONCURRENCY}`;
  const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`
### Team purge (scale ${SCALE}: ${ROBOTS} robots, ${CREDS} credentials, ${certCount} certificates, ${OBJECTS} blob objects)

Machine: ${machine}. CRL ${crl.length} bytes after the drain.

| measurement | time |
|---|---|
| drain: team DELETE committed → bin zero (${certCount} revocations at the local CA + ${OBJECTS} objects purged) | ${fmt(results.drain_ms)} |
| (a) ${items} no-op graphile-worker jobs | ${fmt(results.noop_jobs_ms)} |
| (b) ${bareSerials.length} bare CA revocations in a loop | ${fmt(results.bare_revocations_ms)} |
| **drain / max(a, b)** (target ≤ 1.5) | **${(results.drain_ms / baseline).toFixed(2)}** |
| DELETE team, same cascade with our triggers disabled (best of 3, rolled back) | ${results.delete_plain_ms.toFixed(0)} ms |
| DELETE team with triggers (best of 3, rolled back) | ${results.delete_triggered_ms.toFixed(0)} ms |
| **DELETE with / without triggers** (target ≤ 3) | **${(results.delete_triggered_ms / results.delete_plain_ms).toFixed(2)}** |
| the committed DELETE of the benchmarked team | ${results.delete_real_ms.toFixed(0)} ms |
| prefix purge of the ${OBJECTS} objects inside the drain (enqueued → completed) | ${fmt(results.purge_ms)} (${(OBJECTS / (results.purge_ms / 1000)).toFixed(0)} objects/s) |
| \`rm -rf\` of the same tree (100 directories) | ${fmt(results.rm_rf_ms)} (${(OBJECTS / (results.rm_rf_ms / 1000)).toFixed(0)} objects/s) |
| **purge rate / rm -rf rate** (target ≥ 0.7) | **${(results.rm_rf_ms / results.purge_ms).toFixed(2)}** |
| (set-up) issuing the ${certCount} certificates through the issue task | ${fmt(results.issue_ms)} |
`);
  console.log(JSON.stringify({ scale: SCALE, machine, ...results }));
} finally {
  await scratch.drop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
