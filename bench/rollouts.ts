// Rollouts and lazily regenerated director metadata, side by side in one run:
//  1. launching a rollout to every robot of a 50,000-robot fleet (rollout_launch: one INSERT …
//     SELECT of the robot rows, whose pending rows make their directors dirty), against what eager
//     regeneration at launch (Airbotics' processor) would cost: bare signing of every robot;
//  2. a robot's read of dirty metadata (regenerated under its row lock) vs a clean read, p50/p99,
//     against one bare signing of the same three documents;
//  3. the sweep (regenerateInBatches: up to 20,000 due robots in batches of 500, as rollouts__regenerate runs it): robots/s
//     vs bare signing of the same documents in a loop;
//  4. one changed robot — marked, found by the sweep's query, signed, stored — in the 50,000-
//     robot fleet vs in a 100-robot fleet: the cost follows what changed, not the fleet size.
// Usage: node bench/rollouts.ts   (BENCH_SCALE=0.1: 5,000 robots, a quick check)
// DATABASE_URL = a server to create a scratch database on (default the local one on 5432; an
// embedded PostgreSQL when that is unreachable).
import crypto from "node:crypto";
import { createPool } from "../src/db/pool.ts";
import { SecretBox } from "../src/lib/secrets.ts";
import { type EcuTarget, signDirectorDocuments } from "../src/rollouts/director-documents.ts";
import { ensureDirector, loadDirectorKeys } from "../src/rollouts/director-keys.ts";
import { readDirector, regenerateInBatches } from "../src/rollouts/regenerate.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const FLEET = Math.round(50_000 * SCALE);
const SMALL = 100;
const READS = 1000; // p99 is the 10th slowest read
const CHANGES = 30;
const BATCH = 500;
const MAX_ROBOTS = 20_000; // rollouts__regenerate's default limits
const now = () => performance.now();
const ms = (x: number) => `${x.toFixed(2)} ms`;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const median = (xs: number[]) => pct(xs, 50);

const scratch = await scratchDatabase();
const pool = createPool(scratch.url, 10);
const box = new SecretBox(crypto.randomBytes(32));

async function fleet(name: string, n: number) {
  const team = (await pool.query("insert into gk_public.teams (name) values ($1) returning id", [name])).rows[0].id as string;
  await pool.query("insert into gk_public.robots (team_id, name) select $1, 'r-' || g from generate_series(1, $2::int) g", [team, n]);
  await pool.query(
    `insert into gk_public.ecus (team_id, robot_id, serial, hardware_id, is_primary)
     select r.team_id, r.id, 'ecu-' || r.name, 'hw-a', true from gk_public.robots r where r.team_id = $1`,
    [team],
  );
  const image = (
    await pool.query(
      `insert into gk_public.images (team_id, name, version, blob_key, length, sha256, sha512, hardware_ids)
       values ($1::uuid, 'fw', '2.0.0', 'teams/' || $1::text || '/images/fw-2.0.0', 123456,
               encode(sha256('fw'::bytea), 'hex'), encode(sha512('fw'::bytea), 'hex'), array['hw-a']) returning id`,
      [team],
    )
  ).rows[0].id as string;
  const robots = (await pool.query("select id from gk_public.robots where team_id = $1 order by id", [team])).rows.map(
    (r) => r.id as string,
  );
  const c = await pool.connect();
  try {
    await ensureDirector(c, box, team);
  } finally {
    c.release();
  }
  return { team, image, robots };
}

/** Signs everything dirty the way the sweep does; returns robots/s. */
async function sweep(): Promise<{ robots: number; perSecond: number }> {
  const c = await pool.connect();
  try {
    const t0 = now();
    let total = 0;
    for (;;) {
      const due = (await c.query("select robot_id from gk_private.director_due($1)", [MAX_ROBOTS])).rows.map((r) => r.robot_id);
      if (!due.length) break;
      total += (
        await regenerateInBatches(c, box, due, BATCH, async (_, e) => {
          throw e;
        })
      ).stored.length;
    }
    return { robots: total, perSecond: total / ((now() - t0) / 1000) };
  } finally {
    c.release();
  }
}

try {
  console.log(`fleet of ${FLEET} robots (1 ECU each) and one of ${SMALL}; ${scratch.where} PostgreSQL`);
  const big = await fleet("bench-big", FLEET);
  const small = await fleet("bench-small", SMALL);
  await pool.query("delete from graphile_worker._private_jobs"); // the benchmark drives the sweep itself
  await pool.query("analyze"); // what autovacuum does to freshly loaded tables
  await sweep(); // every director signed once (their ECUs made them dirty)
  // The setup's writes reach the disk before anything is timed: otherwise the first phases share
  // it with the checkpoint they trigger (in a profile of a 20,000-robot fleet the first reads
  // after the setup took ~350 ms each, behind its dirty buffers). CHECKPOINT needs a superuser or
  // pg_checkpoint.
  await pool.query("checkpoint").catch((e) => console.log(`no CHECKPOINT before timing: ${e.message}`));

  // Bare signing of one robot's three documents (what any regeneration must pay at least).
  const c0 = await pool.connect();
  const keys = await loadDirectorKeys(c0, box, big.team);
  c0.release();
  const ecu = (await pool.query("select * from gk_private.director_targets(array[$1]::uuid[])", [big.robots[0]])).rows as EcuTarget[];
  const bareN = Math.min(FLEET, 5000);
  let t = now();
  for (let i = 0; i < bareN; i++)
    signDirectorDocuments(keys.online, { targets: i + 1, snapshot: i + 1, timestamp: i + 1 }, Date.now(), keys.lifetimes, ecu);
  const bareMs = (now() - t) / bareN;
  console.log(`bare signing of one robot's targets + snapshot + timestamp: ${ms(bareMs)} (${Math.round(1000 / bareMs)} robots/s)`);

  // 1. Launch.
  const rollout = (
    await pool.query(
      "select id from gk_public.rollout_create($1, 'all', 'hardware_id_match', jsonb_build_array(jsonb_build_object('hardwareId', 'hw-a', 'imageId', $2::text)))",
      [big.team, big.image],
    )
  ).rows[0].id;
  // The bare cost of touching that many rows once: one UPDATE of every robot row, rolled back.
  const bare = await pool.connect();
  t = now();
  await bare.query("begin");
  await bare.query("update gk_public.robots set name = name where team_id = $1", [big.team]);
  const bareUpdateMs = now() - t;
  await bare.query("rollback");
  bare.release();
  t = now();
  await pool.query("select gk_public.rollout_launch($1)", [rollout]);
  const launchMs = now() - t;
  // No ANALYZE here: robots read right after a launch, on statistics from before it (autovacuum
  // analyzes a minute later at best, and never when the launch is under 10% of the table).
  // Dirty as the read path and the sweep see it: flagged, or with a pending rollout row.
  const dirty = (await pool.query("select dirty_robots::int as n from gk_public.director_status where team_id = $1", [big.team])).rows[0].n;
  console.log(
    `1. launch to ${FLEET} robots: ${ms(launchMs)} (target ≤ 1 s), ${dirty} directors dirty = ${(launchMs / bareUpdateMs).toFixed(2)}× one bare UPDATE of ${FLEET} robot rows (${ms(bareUpdateMs)}); eager regeneration at launch would sign for ≥ ${ms(bareMs * FLEET)} (${((bareMs * FLEET) / launchMs).toFixed(1)}× the launch)`,
  );

  // 2. Dirty read vs clean read of the same robots, on a warm pool as in a long-running server:
  // every connection open (a read that finds its connection still finishing the previous read's
  // COMMIT would otherwise time a new connection's start-up), each session's plans made (a read
  // of an unknown robot runs both paths and changes nothing).
  const warm = await Promise.all(Array.from({ length: 10 }, () => pool.connect()));
  for (const c of warm) {
    await c.query("begin");
    await c.query("select * from gk_private.director_read(gen_random_uuid(), $1)", [big.team]).catch(() => {});
    await c.query("rollback");
    c.release();
  }
  // Each robot of the sample is read dirty, then clean, then the bare durable write is made, one
  // after the other: the three series see the same load on this noisy machine, so their p99s
  // compare (timed as phases, one phase's p99 was another's burst of noise).
  // The bare durable write is what a dirty read must do besides signing: two round trips on the
  // same pool (BEGIN with a read, then a write of the documents' size with COMMIT), as
  // readDirector makes them; its p99 is mostly the commit's WAL flush on this disk.
  await pool.query("create table if not exists public.bench_commit_floor (id bigserial primary key, doc text not null)");
  const doc = "x".repeat(2048);
  const durableWrite = async () => {
    const c = await pool.connect();
    try {
      await c.query("begin; select 1");
      await c.query(`insert into public.bench_commit_floor (doc) values ('${doc}'); commit`);
    } finally {
      c.release();
    }
  };
  const sample = big.robots.filter((_, i) => i % Math.max(1, Math.floor(FLEET / READS)) === 0).slice(0, READS);
  const dirtyReads: number[] = [];
  const cleanReads: number[] = [];
  const commitReads: number[] = [];
  for (const id of sample) {
    t = now();
    const r = await readDirector(pool, box, id, big.team);
    dirtyReads.push(now() - t);
    if (!r?.signed) throw new Error("expected a dirty read to sign");
    t = now();
    if ((await readDirector(pool, box, id, big.team))?.signed !== false) throw new Error("expected a clean read");
    cleanReads.push(now() - t);
    t = now();
    await durableWrite();
    commitReads.push(now() - t);
  }
  const [d50, d99, c50, c99] = [pct(dirtyReads, 50), pct(dirtyReads, 99), pct(cleanReads, 50), pct(cleanReads, 99)];
  const [w50, w99] = [pct(commitReads, 50), pct(commitReads, 99)];
  console.log(
    `2. read of ${sample.length} robots: dirty p50 ${ms(d50)} p99 ${ms(d99)}; clean p50 ${ms(c50)} p99 ${ms(c99)}; dirty p99 / (2 × clean p99 + one signing) = ${(d99 / (2 * c99 + bareMs)).toFixed(2)} (target ≤ 1); bare durable write p50 ${ms(w50)} p99 ${ms(w99)}, dirty p99 / (2 × clean p99 + one signing + bare durable write p99) = ${(d99 / (2 * c99 + bareMs + w99)).toFixed(2)}`,
  );

  // 3. Sweep throughput over the rest of the launch.
  const s = await sweep();
  console.log(
    `3. sweep: ${s.robots} robots at ${Math.round(s.perSecond)} robots/s vs bare signing ${Math.round(1000 / bareMs)} robots/s → ${(s.perSecond / (1000 / bareMs)).toFixed(2)}× (target ≥ 0.5×)`,
  );

  // 4. One changed robot in the big fleet vs in the small one (alternating, median of CHANGES).
  const one = async (f: { team: string; robots: string[] }, i: number) => {
    const id = f.robots[i % f.robots.length];
    const start = now();
    await pool.query(
      "update gk_public.ecus set hardware_id = case when hardware_id = 'hw-a' then 'hw-b' else 'hw-a' end where robot_id = $1",
      [id],
    );
    const r = await sweep();
    if (r.robots !== 1) throw new Error(`expected one robot regenerated, got ${r.robots}`);
    return now() - start;
  };
  const bigT: number[] = [];
  const smallT: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    bigT.push(await one(big, i));
    smallT.push(await one(small, i));
  }
  console.log(
    `4. one changed robot (mark + sweep query + sign + store): ${FLEET}-robot fleet ${ms(median(bigT))} vs ${SMALL}-robot fleet ${ms(median(smallT))} → ${(median(bigT) / median(smallT)).toFixed(2)}× (target ≤ 1.2×)`,
  );
} finally {
  await pool.end();
  await scratch.drop();
}
