// Robot certificates regenerated lazily, measured side by side with the bare cost of the same CA
// work in the same run (local CA in a scratch database, the robot API over real mutual TLS).
//   node bench/robots.ts                    1,000 robots in the swept team, 200 reads of each kind
//   BENCH_SCALE=0.2 node bench/robots.ts    200 robots, 40 reads (quick check)
//   BENCH_PART=manifests node bench/robots.ts   manifests only: the replay check and the comparison
//                                           with the director's targets (bench/lib/robot-manifests.ts), 200 robots
// 1. Mark: renaming the team marks all its robots dirty (one statement).
// 2. Reads: GET /robot/v1/certificate of clean robots vs dirty robots (the read requests the
//    replacement, a background worker issues it, the read hands it over), p50/p99, next to a bare
//    ca.issue() of the same certificate: a dirty read should cost about a clean read + one issue
//    + the worker's pickup.
// 3. Sweep: the robots__regenerate reconciler and certificates__issue (as a worker runs them)
//    until every robot is clean, robots/s, against bare ca.issue() of as many certificates.
import pg from "pg";
import type { TestDb } from "../test/helpers/db.ts";
import { setupRobotApi } from "../test/robots/helpers/robot-api.ts";
import { manifestsBench } from "./lib/robot-manifests.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const FLEET = Math.max(10, Math.round(1000 * SCALE));
const READS = Math.max(10, Math.round(200 * SCALE));

const scratch = await scratchDatabase();
const pool = new pg.Pool({ connectionString: scratch.url, max: 12 });
const db = {
  url: scratch.url,
  name: new URL(scratch.url).pathname.slice(1),
  pool,
  query: <R extends pg.QueryResultRow = any>(s: string, p?: unknown[]) => pool.query<R>(s, p),
} as unknown as TestDb;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const f = (x: number) => `${x.toFixed(1)} ms`;

if (process.env.BENCH_PART === "manifests") {
  try {
    console.log(`machine: ${(await import("node:os")).cpus().length} cores; database: ${scratch.where}; scale ${SCALE}`);
    await manifestsBench(pool, Math.max(10, Math.round(200 * SCALE)));
  } finally {
    await pool.end();
    await scratch.drop();
  }
  process.exit(0);
}

const h = await setupRobotApi(db, { name: "bench" });
try {
  console.log(`machine: ${(await import("node:os")).cpus().length} cores; database: ${scratch.where}; scale ${SCALE}`);
  const key = h.newKey();
  const team = (await db.query("insert into gk_public.teams (name) values ('bench') returning id")).rows[0].id as string;
  await db.query("insert into gk_public.robots (team_id, name) select $1, 'r' || g from generate_series(1, $2::int) g", [team, FLEET]);
  // The fleet's certificates through the real request path, issued in bulk by certificates__issue.
  await db.query(
    `insert into gk_public.certificates (owner_team_id, robot_id, profile, public_key_pem, not_after)
     select team_id, id, 'robot', $2, now() + interval '30 days' from gk_public.robots where team_id = $1`,
    [team, key.publicKeyPem],
  );
  await h.runJobs();
  const { rows: fleet } = await db.query<{ robot_id: string; pem: string }>(
    "select robot_id, pem from gk_public.certificates where owner_team_id = $1 and status = 'issued' order by robot_id",
    [team],
  );
  console.log(`${fleet.length} robots with issued certificates`);

  // Bare issuance: the CA signing the same certificate, nothing else.
  const bare: number[] = [];
  const notAfter = new Date(Date.now() + 86400_000);
  for (const r of fleet.slice(0, READS)) {
    const t0 = process.hrtime.bigint();
    await h.ca.issue({
      commonName: r.robot_id,
      profile: "robot",
      publicKeyPem: key.publicKeyPem,
      notAfter,
      subject: { organization: "bench", units: ["name=x"] },
    });
    bare.push(ms(t0));
  }

  const readAll = async (robots: typeof fleet) => {
    const times: number[] = [];
    for (const r of robots) {
      const t0 = process.hrtime.bigint();
      const a = await h.request({ keyPem: key.keyPem, certPem: r.pem }, "GET", "/robot/v1/certificate");
      if (a.status !== 200) throw new Error(`read answered ${a.status}: ${JSON.stringify(a.body)}`);
      times.push(ms(t0));
    }
    return times;
  };
  const clean = await readAll(fleet.slice(0, READS));

  // 1. The mark: one statement for the whole team.
  let t0 = process.hrtime.bigint();
  await db.query("update gk_public.teams set name = 'bench-renamed' where id = $1", [team]);
  const mark = ms(t0);

  // 2. Dirty reads, with a worker issuing in the background.
  const worker = await h.startWorker();
  let dirty: number[];
  try {
    dirty = await readAll(fleet.slice(READS, 2 * READS));
  } finally {
    await worker.stop();
  }

  // 3. The sweep for the rest of the team, as a worker runs it (cron + certificates__issue).
  const left = (
    await db.query("select count(*)::int as n from gk_public.robots where team_id = $1 and certificate_dirty_since is not null", [team])
  ).rows[0].n as number;
  t0 = process.hrtime.bigint();
  await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"max_robots": 500}}'::json)`);
  for (;;) {
    await h.runJobs();
    const n = (
      await db.query("select count(*)::int as n from gk_public.robots where team_id = $1 and certificate_dirty_since is not null", [team])
    ).rows[0].n as number;
    if (n === 0) break;
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"max_robots": 500}}'::json)`);
  }
  const sweepMs = ms(t0);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < left; i++) {
    await h.ca.issue({
      commonName: fleet[i % fleet.length]!.robot_id,
      profile: "robot",
      publicKeyPem: key.publicKeyPem,
      notAfter,
      subject: { organization: "bench", units: ["name=x"] },
    });
  }
  const bareMs = ms(t0);

  console.log(`mark ${fleet.length} robots dirty (team rename, one statement): ${f(mark)}`);
  console.log(`bare issue:  p50 ${f(pct(bare, 50))}  p99 ${f(pct(bare, 99))}`);
  console.log(`clean read:  p50 ${f(pct(clean, 50))}  p99 ${f(pct(clean, 99))}`);
  console.log(`dirty read:  p50 ${f(pct(dirty, 50))}  p99 ${f(pct(dirty, 99))}`);
  console.log(
    `dirty p99 / (clean p99 + bare issue p99): ${(pct(dirty, 99) / (pct(clean, 99) + pct(bare, 99))).toFixed(2)}×; dirty p50 − clean p50 = ${f(pct(dirty, 50) - pct(clean, 50))}`,
  );
  const sweepRate = left / (sweepMs / 1000);
  const bareRate = left / (bareMs / 1000);
  console.log(
    `sweep: ${left} robots in ${(sweepMs / 1000).toFixed(2)} s = ${sweepRate.toFixed(0)} robots/s; bare issue ${bareRate.toFixed(0)} certs/s; ratio ${(sweepRate / bareRate).toFixed(2)}×`,
  );
} finally {
  await h.close();
  await pool.end();
  await scratch.drop();
}
