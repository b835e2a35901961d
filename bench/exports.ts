// Exports, measured against the bare cost of the same node work in the same run.
//   node bench/exports.ts                    10,000 images on 3 export nodes
//   BENCH_SCALE=0.1 node bench/exports.ts    1,000 images (quick check); the changeset part scales too
//   BENCH_CHANGESET_N=100000                 the changeset's image count, whatever the scale
// 1. Coordinated: time from the coordinator's activation until every image has one live export
//    (records requested, create sagas: take, place, attach on the node, live) with a worker of
//    CONCURRENCY jobs, against bare attach calls for the same blobs on the same nodes with the same
//    parallelism (no database), done first.
// 2. Expunge: one node expunged; time until every export it held is live on the other two.
// 3. What an activation reads to know what to do, over 100,000 × SCALE images with 1% changed
//    (0.5% new images, 0.5% deleted, recorded by the triggers): settling the pending entries,
//    marking, the changeset; median of 5, each rolled back, with each part's median. And the
//    safety net's full sweep once.
// Node processes are real (`groundskeeper agent --roles exports`, mutual TLS on loopback); blobs
// are 4 KiB each in a filesystem blob store.
import crypto from "node:crypto";
import path from "node:path";
import pg from "pg";
import { FsBlobStore } from "../src/adapters/blobs/fs.ts";
import { ExportNodes } from "../src/exports/nodes.ts";
import { mapSettled } from "../src/lib/map-limit.ts";
import { startWorker } from "../src/worker/runner.ts";
import { type NodeProcess, runNode } from "../test/exports/helpers/nodes.ts";
import { setupPeers } from "../test/helpers/peers.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const N = Math.round(10_000 * SCALE);
const CHANGESET_N = Number(process.env.BENCH_CHANGESET_N ?? Math.round(100_000 * SCALE));
const NODES = 3;
const PER_NODE = 8;
const CONCURRENCY = NODES * PER_NODE;

const scratch = await scratchDatabase();
const pool = new pg.Pool({ connectionString: scratch.url, max: 40 });
// The controller identity and the CA keep using the pool until the end; dropping the scratch
// database then terminates their idle connections, which is no failure of the benchmark.
pool.on("error", () => {});
const db = {
  url: scratch.url,
  name: new URL(scratch.url).pathname.slice(1),
  pool,
  query: <R extends pg.QueryResultRow = any>(s: string, p?: unknown[]) => pool.query<R>(s, p),
};
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (x: number) => `${(x / 1000).toFixed(2)} s`;
const count = async (sql: string, p: unknown[] = []) => Number((await db.query(sql, p)).rows[0].n);
const UNSETTLED = `select (select count(*) from (select 1 from gk_private.export_pending order by id limit 1) p)
   + (select count(*) from (select 1 from gk_public.exports e
                             where e.state <> 'deleted' and (e.state <> 'live' or e.delete_requested_at is not null)
                             order by e.state_changed_at limit 1) u) as n`;
const LIVE = "select count(*) as n from gk_public.exports where state = 'live'";
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 1_800_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const peers = await setupPeers(db as never, "bench");
const nodes: NodeProcess[] = [];
let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
try {
  console.log(`machine: ${(await import("node:os")).cpus().length} cores; database: ${scratch.where}; scale ${SCALE}`);
  console.log(`${N} images on ${NODES} nodes, ${CONCURRENCY} calls in flight (${PER_NODE} per node)`);
  const enrolled = [];
  for (let i = 1; i <= NODES; i++) {
    const e = await peers.enroll(`bench-${i}`);
    enrolled.push({ name: `bench-${i}`, workerId: e.workerId, creds: e.dir, dataDir: path.join(peers.tmp, `node-${i}`) });
  }
  nodes.push(...(await Promise.all(enrolled.map((e) => runNode(peers, e)))));
  const nodeRows = (await db.query("select id, worker_id, address from gk_public.export_nodes order by address")).rows;
  // Heartbeats every 300 ms keep them fresh; give them a long TTL anyway (a loaded machine).
  await db.query("update gk_public.export_nodes set heartbeat_ttl = interval '10 minutes'");

  // ---- state: images with real 4 KiB blobs ----
  const team = (await db.query("insert into gk_public.teams (name) values ('bench') returning id")).rows[0].id;
  const blobs = new FsBlobStore(path.join(peers.tmp, "blobs"));
  const made = Array.from({ length: N }, (_, i) => {
    const bytes = crypto.randomBytes(4096);
    return {
      i,
      key: `teams/${team}/images/fw/${i}.bin`,
      bytes,
      sha256: crypto.createHash("sha256").update(bytes).digest("hex"),
      sha512: crypto.createHash("sha512").update(bytes).digest("hex"),
    };
  });
  await mapSettled(made, 32, (m) => blobs.put(m.key, m.bytes));

  // ---- 1a. bare attach calls ----
  const clients = new ExportNodes(peers.services, { parallelism: PER_NODE, timeoutMs: 60_000, attachTimeoutMs: 60_000 });
  let t0 = process.hrtime.bigint();
  const bare = await mapSettled(made, CONCURRENCY, async (m) => {
    const c = await clients.client(nodeRows[m.i % NODES]);
    await c.request("POST", "/v1/exports", { attachment_id: crypto.randomUUID(), blob_key: m.key, sha256: m.sha256, length: 4096 });
  });
  const bareMs = ms(t0);
  const bareFailed = bare.filter((r) => r.status === "rejected").length;
  if (bareFailed) throw new Error(`${bareFailed} bare attaches failed`);
  clients.close();

  // ---- 1b. coordinated ----
  await db.query(
    `insert into gk_public.images (team_id, name, version, blob_key, length, sha256, sha512, hardware_ids)
     select $1, 'fw', '1.0.' || o, k, 4096, s, s5, '{hw}' from unnest($2::text[], $3::text[], $4::text[]) with ordinality x(k, s, s5, o)`,
    [team, made.map((m) => m.key), made.map((m) => m.sha256), made.map((m) => m.sha512)],
  );
  await db.query("delete from graphile_worker._private_jobs");
  worker = await startWorker({ databaseUrl: db.url, services: peers.services, concurrency: CONCURRENCY, cron: false, pollInterval: 100 });
  t0 = process.hrtime.bigint();
  const started = (await db.query("select clock_timestamp() as t")).rows[0].t;
  await db.query("select gk_public.activate_reconciler('exports__coordinate')");
  // Polled every 100 ms beside the sagas, so it must cost next to nothing: counting the live
  // records read the whole table ten times a second, database work the bare calls never had.
  // Nothing pending and no record short of live (exports_unsettled_idx) is two index probes;
  // the count confirms once.
  await until("every image live", async () => (await count(UNSETTLED)) === 0 && (await count(LIVE)) === N);
  const coordMs = ms(t0);
  // Where the time went: the coordinator's activations, then the sagas from the first to the last live.
  const { rows: phase } = await db.query(
    `select (select count(*)::int from gk_public.activations where task = 'exports__coordinate') as activations,
            (select sum(extract(epoch from finished_at - started_at)) * 1000 from gk_public.activations where task = 'exports__coordinate') as coord_ms,
            extract(epoch from min(live_at) - $1) * 1000 as first_live_ms, extract(epoch from max(live_at) - $1) * 1000 as last_live_ms
       from gk_public.exports where state = 'live'`,
    [started],
  );
  const ph = phase[0];
  const { rows: acts } = await db.query(
    `select extract(epoch from started_at - $1) * 1000 as at, extract(epoch from finished_at - started_at) * 1000 as dur,
            extract(epoch from started_at - lag(finished_at) over (order by id)) * 1000 as gap, counts->>'create_invoked_ok' as created
       from gk_public.activations where task = 'exports__coordinate' order by id`,
    [started],
  );
  // Each activation: when it started, how long it ran, how long it waited behind the saga jobs.
  for (const a of acts)
    console.log(
      `  activation at ${Number(a.at).toFixed(0)} ms: ${Number(a.dur).toFixed(0)} ms, gap ${a.gap === null ? "-" : Number(a.gap).toFixed(0)} ms, created ${a.created}`,
    );

  console.log(`bare attach calls:        ${fmt(bareMs)}`);
  console.log(
    `coordinated until live:   ${fmt(coordMs)} (${ph.activations} activations, ${Number(ph.coord_ms).toFixed(0)} ms in them; first live at ${Number(ph.first_live_ms).toFixed(0)} ms, last at ${Number(ph.last_live_ms).toFixed(0)} ms) → ratio ${(coordMs / bareMs).toFixed(2)}× (target ≤ 1.5×)`,
  );

  // ---- 2. expunge ----
  const victim = nodeRows[0];
  const held = await count("select count(*) as n from gk_public.exports where node_id = $1 and state = 'live'", [victim.id]);
  t0 = process.hrtime.bigint();
  await db.query("select gk_public.expunge_export_node($1)", [victim.id]);
  await until(
    "re-homed",
    async () =>
      (await count("select count(*) as n from gk_public.exports where node_id = $1 and state <> 'deleted'", [victim.id])) === 0 &&
      (await count("select count(*) as n from gk_public.exports where state = 'live'")) === N,
  );
  console.log(`expunge a node holding ${held} exports until all live elsewhere: ${fmt(ms(t0))}`);
  await worker.stop();
  worker = undefined;

  // ---- 3. changeset ----
  await db.query("delete from gk_public.exports");
  await db.query("delete from gk_public.images");
  const other = nodeRows[1].id;
  const insertImages = (n: number, from: number) =>
    db.query(
      `insert into gk_public.images (team_id, name, version, blob_key, length, sha256, sha512, hardware_ids)
       select $1::uuid, 'cs', '1.' || g, 'teams/' || $1::text || '/images/cs/' || g, 4096, repeat('a', 64), repeat('b', 128), '{hw}'
         from generate_series($2::int, $2::int + $3::int - 1) g`,
      [team, from, n],
    );
  await insertImages(CHANGESET_N, 1);
  // Settled: every image has a live record, with history (one deleted record each), nothing pending.
  await db.query(
    `insert into gk_public.exports (resource_type, resource_id, state, node_id, attachment_id, url, generation, live_at)
     select 'image', i.id, 'live', $1, a, 'https://127.0.0.1:1/v1/exports/' || a || '/blob', 1, now()
       from gk_public.images i, gen_random_uuid() a`,
    [other],
  );
  await db.query(
    `insert into gk_public.exports (resource_type, resource_id, state, deleted_at) select 'image', id, 'deleted', now() from gk_public.images`,
  );
  await db.query("delete from gk_private.export_pending");
  await db.query("update gk_private.export_sweeps set last_full_at = now()");
  // 1% changed, the way it happens: 0.5% new images (to be requested), 0.5% deleted (their live
  // records to be marked); the triggers record them.
  const changed = Math.round(CHANGESET_N / 100);
  await insertImages(changed / 2, CHANGESET_N + 1);
  await db.query("delete from gk_public.images where id in (select id from gk_public.images order by id limit $1)", [changed / 2]);
  for (const t of ["images", "exports"]) await db.query(`vacuum analyze gk_public.${t}`);
  await db.query("vacuum analyze gk_private.export_pending");
  // What an activation runs to know what to do (settle what changed, mark expunged nodes' records,
  // the changeset), each time on the same changes: in a transaction rolled back after.
  // Each part timed too: the changeset query itself, and the writes before it (settling the
  // pending entries, marking).
  const c = await pool.connect();
  const times: number[] = [];
  const parts = { settle: [] as number[], mark: [] as number[], query: [] as number[] };
  let rows = 0;
  let settled = { taken: 0, requested: 0, marked: 0 };
  try {
    for (let i = 0; i < 5; i++) {
      await c.query("begin");
      t0 = process.hrtime.bigint();
      settled = (await c.query("select * from gk_private.exports_settle_pending(2000)")).rows[0];
      parts.settle.push(ms(t0));
      let t1 = process.hrtime.bigint();
      await c.query("select gk_private.exports_mark_for_deletion()");
      parts.mark.push(ms(t1));
      t1 = process.hrtime.bigint();
      rows = (await c.query("select * from gk_private.exports_changeset(2000)")).rowCount ?? 0;
      parts.query.push(ms(t1));
      times.push(ms(t0));
      await c.query("rollback");
    }
    // The safety net's full anti-joins (every full_sweep_minutes), once, for comparison.
    await c.query("begin");
    await c.query("update gk_private.export_sweeps set last_full_at = null");
    t0 = process.hrtime.bigint();
    const swept = (await c.query("select gk_private.exports_full_sweep(2000, interval '1 hour') as n")).rows[0].n;
    const sweepMs = ms(t0);
    await c.query("rollback");
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!.toFixed(1);
    console.log(
      `changeset over ${CHANGESET_N} images (${changed} changed: ${settled.requested} requested, ${settled.marked} marked → ${rows} rows): median ${median(times)} ms (target ≤ 100 ms): settling ${median(parts.settle)}, marking ${median(parts.mark)}, the changeset query ${median(parts.query)} ms`,
    );
    console.log(`full sweep (safety net) over the same: ${sweepMs.toFixed(1)} ms, found ${swept}`);
  } finally {
    c.release();
  }
} finally {
  await worker?.stop().catch(() => {});
  for (const n of nodes) await n.proc.stop("SIGKILL");
  await peers.close();
  await pool.end();
  await scratch.drop();
}
