// Volume collection, measured against the bare cost of the same agent work in the same run.
//   node bench/volumes.ts                    100,000 volumes on 4 agents (a quarter copy-on-write children)
//   BENCH_SCALE=0.05 node bench/volumes.ts   5,000 volumes (quick check)
// 1. Collection: half the volumes orphaned in one statement (their containers deleted); time until
//    every orphan is gone from the database and from every agent's live/ (the collector: mark,
//    reports, batched destroys of 200 handles, 4 calls in flight per agent, children before their
//    parents) against the same agents destroying the same handles in a bare loop with the same
//    batches and parallelism. Both also timed until the agents' dead/ directories are drained.
// 2. The orphan mark alone at that size (one statement), next to a bare UPDATE of as many rows of
//    a two-index table and the same rows of gk_public.volumes updated by id; its HOT updates and WAL.
// 3. One agent's report of 100,000 × SCALE handles reconciled (one statement), next to the same
//    handles sent and counted, and the same full join read only.
// Setup writes the agents' directories directly (mkdir, one file per volume, children copied);
// everything measured goes through the agents' HTTPS API and the database as in production.
import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { mapSettled } from "../src/lib/map-limit.ts";
import type { PeerClient } from "../src/peers/client.ts";
import { VolumeAgents } from "../src/volumes/agents.ts";
import { type CollectDb, collect, collectDb, DEFAULT_COLLECT, reconcileReport } from "../src/volumes/collect.ts";
import { type AgentProcess, setupPeers, startAgent } from "../test/volumes/helpers/peers.ts";
import { SCALE } from "./lib/scale.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

// (BENCH_SCALE: bench/lib/scale.ts)
const AGENTS = 4;
const PER_AGENT = Math.round((100_000 * SCALE) / AGENTS);
const CHILDREN = Math.round(PER_AGENT / 4);
const ROOTS = PER_AGENT - CHILDREN;
const PARALLELISM = 4;
const BATCH = 200;

const scratch = await scratchDatabase();
const pool = new pg.Pool({ connectionString: scratch.url, max: 12 });
const db = {
  url: scratch.url,
  name: new URL(scratch.url).pathname.slice(1),
  pool,
  query: <R extends pg.QueryResultRow = any>(s: string, p?: unknown[]) => pool.query<R>(s, p),
};
// Where the collector's time goes: database time per statement (summed over its lanes, which
// overlap) and agent calls, printed after the collection.
const spent = new Map<string, { n: number; ms: number }>();
const account = async <T>(what: string, p: Promise<T>): Promise<T> => {
  const t = process.hrtime.bigint();
  try {
    return await p;
  } finally {
    const e = spent.get(what) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += ms(t);
    spent.set(what, e);
  }
};
const statement = (sql: string) => {
  const names = [...sql.matchAll(/gk_private\.(\w+)/g)].map((m) => m[1]!);
  return names.filter((n) => n !== "volumes_worker_lease_renew").join(" + ") || names[0] || sql.trim().split(/\s/)[0]!.toLowerCase();
};
const plain = collectDb(pool);
const q: CollectDb = { query: (sql, params) => account(statement(sql), plain.query(sql, params)) };
await db.query(`alter database ${db.name} set groundskeeper.volumes_lease = '30 seconds'`);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (x: number) => `${(x / 1000).toFixed(2)} s`;

const peers = await setupPeers(db as never, "bench");
const agents: AgentProcess[] = [];
const workers: { id: string; name: string }[] = [];
// Ctrl-C: the agents and the scratch database go too.
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    for (const a of agents) a.proc.child.kill("SIGKILL");
    void Promise.allSettled([peers.close(), scratch.drop()]).then(() => process.exit(130));
  });
try {
  console.log(`machine: ${(await import("node:os")).cpus().length} cores; database: ${scratch.where}; scale ${SCALE}`);
  console.log(`${AGENTS * PER_AGENT} volumes on ${AGENTS} agents (${AGENTS * CHILDREN} copy-on-write children)`);
  for (let i = 1; i <= AGENTS; i++) {
    const e = await peers.enroll(`bench-${i}`);
    agents.push(await startAgent(peers, e.dir, path.join(peers.tmp, `agent-${i}`), { heartbeatMs: 2000 }));
    workers.push({ id: e.workerId, name: `bench-${i}` });
  }
  const team = (await db.query("insert into gk_public.teams (name) values ('bench') returning id")).rows[0].id;

  // ---- state: rows and directories ----
  const t0 = process.hrtime.bigint();
  for (const w of workers) {
    await db.query(
      `with b as (insert into gk_public.builds (team_id) select $2 from generate_series(1, $3) returning id)
       insert into gk_public.containers (worker_id, build_id) select $1, id from b`,
      [w.id, team, PER_AGENT],
    );
    await db.query(
      `insert into gk_public.volumes (worker_id, state, container_id)
       select $1, 'created', c.id from gk_public.containers c where c.worker_id = $1 order by c.id limit $2`,
      [w.id, ROOTS],
    );
    // The remaining containers own the children: the n-th child copies the n-th root (a hash
    // join on n; the tables are analyzed first so the planner knows their sizes).
    await db.query("analyze gk_public.containers, gk_public.volumes");
    await db.query(
      `insert into gk_public.volumes (worker_id, state, container_id, parent_id, parent_state)
       select $1, 'created', c.id, p.id, 'created'
         from (select id, row_number() over (order by id) as n
                 from (select id from gk_public.containers where worker_id = $1 order by id offset $2) x) c
         join (select id, row_number() over (order by id) as n
                 from gk_public.volumes where worker_id = $1 and parent_id is null) p on p.n = c.n`,
      [w.id, ROOTS],
    );
  }
  const children = (await db.query("select count(*)::int as n from gk_public.volumes where parent_id is not null")).rows[0].n;
  if (children !== AGENTS * CHILDREN) throw new Error(`setup made ${children} children, not ${AGENTS * CHILDREN}`);
  await db.query("delete from graphile_worker._private_jobs");
  const layout = async () => {
    for (const [i, w] of workers.entries()) {
      const { rows } = await db.query<{ handle: string; parent: string | null }>(
        `select v.handle::text, p.handle::text as parent from gk_public.volumes v left join gk_public.volumes p on p.id = v.parent_id
          where v.worker_id = $1 order by v.parent_id nulls first`,
        [w.id],
      );
      const live = path.join(agents[i]!.store, "live");
      for (const r of rows) {
        const dir = path.join(live, r.handle);
        if (fs.existsSync(dir)) continue;
        if (r.parent) fs.cpSync(path.join(live, r.parent), dir, { recursive: true, mode: fs.constants.COPYFILE_FICLONE });
        else {
          fs.mkdirSync(dir);
          fs.writeFileSync(path.join(dir, "data"), r.handle);
        }
      }
    }
  };
  console.log(`setup rows: ${fmt(ms(t0))}`);
  await layout();
  await db.query("vacuum analyze gk_public.volumes");
  console.log(`setup: ${fmt(ms(t0))}`);

  // Orphans, per agent: half of the roots that have a child, with their children, and as many
  // lone roots as make half of all volumes — a quarter of the orphans copy-on-write pairs.
  const doomed: number[] = [];
  for (const w of workers) {
    const { rows: roots } = await db.query<{ id: string; container_id: string; has_child: boolean }>(
      `select v.id, v.container_id, exists (select 1 from gk_public.volumes c where c.parent_id = v.id) as has_child
         from gk_public.volumes v where v.worker_id = $1 and v.parent_id is null order by v.id`,
      [w.id],
    );
    const pairs = roots.filter((r) => r.has_child).slice(0, Math.floor(CHILDREN / 2));
    const lone = roots.filter((r) => !r.has_child).slice(0, Math.floor(PER_AGENT / 2) - 2 * pairs.length);
    const { rows: kids } = await db.query<{ container_id: string }>(
      "select container_id from gk_public.volumes where parent_id = any($1::bigint[])",
      [pairs.map((p) => p.id)],
    );
    doomed.push(...[...pairs, ...lone, ...kids].map((r) => Number(r.container_id)));
  }
  const { rows: keepRows } = await db.query<{ worker_id: string; handle: string }>(
    "select worker_id, handle::text from gk_public.volumes where container_id <> all($1::bigint[])",
    [doomed],
  );
  const orphanHandles = new Map<string, string[]>();
  for (const r of (
    await db.query<{ worker_id: string; handle: string }>(
      "select worker_id, handle::text from gk_public.volumes where container_id = any($1::bigint[])",
      [doomed],
    )
  ).rows) {
    orphanHandles.set(r.worker_id, [...(orphanHandles.get(r.worker_id) ?? []), r.handle]);
  }
  const expectedLive = keepRows.length / AGENTS;
  console.log(`orphaned: ${doomed.length} volumes (${(doomed.length / (AGENTS * PER_AGENT)) * 100}%)`);

  const liveCounts = () => agents.map((a) => fs.readdirSync(path.join(a.store, "live")).length);
  const deadEmpty = () => agents.every((a) => fs.readdirSync(path.join(a.store, "dead")).length === 0);
  const waitDead = async () => {
    while (!deadEmpty()) await new Promise((r) => setTimeout(r, 20));
  };

  // ---- 1a. the collector ----
  const volumeAgents = new VolumeAgents(peers.identity, { parallelism: PARALLELISM, timeoutMs: 60_000 });
  const clientOf = volumeAgents.client.bind(volumeAgents);
  const wrapped = new WeakSet<PeerClient>();
  volumeAgents.client = async (w) => {
    const c = await clientOf(w);
    if (wrapped.has(c)) return c;
    wrapped.add(c);
    const request = c.request.bind(c);
    c.request = ((method: string, p: string, body?: unknown, t?: number) =>
      account(`HTTP ${method} ${p}`, request(method, p, body, t))) as never;
    return c;
  };
  const tDel = process.hrtime.bigint();
  await db.query("delete from gk_public.containers where id = any($1::bigint[])", [doomed]);
  const deleteMs = ms(tDel);
  const tGc = process.hrtime.bigint();
  let rounds = 0;
  for (;;) {
    rounds++;
    const s = await collect(q, volumeAgents, { ...DEFAULT_COLLECT, batchSize: BATCH });
    if (s.errors.length) throw new Error(`collector errors: ${JSON.stringify(s.errors.slice(0, 3))}`);
    const { rows } = await db.query("select count(*)::int as n from gk_public.volumes where container_id is null");
    if (rows[0].n === 0) break;
  }
  const gcMs = ms(tGc);
  const profile = [...spent.entries()].sort((a, b) => b[1].ms - a[1].ms);
  console.log(`collector time by statement (calls, total over overlapping lanes, mean):`);
  for (const [what, e] of profile)
    console.log(`  ${what.padEnd(32)} ${String(e.n).padStart(6)} ${fmt(e.ms).padStart(9)} ${(e.ms / e.n).toFixed(1).padStart(8)} ms`);
  if (liveCounts().some((n) => n !== expectedLive)) throw new Error(`live/ not as expected: ${liveCounts()} vs ${expectedLive}`);
  await waitDead();
  const gcDeadMs = ms(tGc);
  volumeAgents.close();

  // ---- 1b. the bare loop: the same handles, same batches, same parallelism, no database ----
  // The destroyed volumes come back on disk (the rows are gone, so they are laid out from the list).
  for (const [i, w] of workers.entries()) {
    const live = path.join(agents[i]!.store, "live");
    for (const h of orphanHandles.get(w.id) ?? []) {
      fs.mkdirSync(path.join(live, h));
      fs.writeFileSync(path.join(live, h, "data"), h);
    }
  }
  const bare = new VolumeAgents(peers.identity, { parallelism: PARALLELISM, timeoutMs: 60_000 });
  const clients: PeerClient[] = [];
  for (const [i, w] of workers.entries()) clients.push(await bare.client({ id: w.id, name: w.name, address: agents[i]!.url }));
  const tBare = process.hrtime.bigint();
  await Promise.all(
    workers.map(async (w, i) => {
      const handles = orphanHandles.get(w.id) ?? [];
      const batches: string[][] = [];
      for (let j = 0; j < handles.length; j += BATCH) batches.push(handles.slice(j, j + BATCH));
      await mapSettled(batches, PARALLELISM, (b) => clients[i]!.request("POST", "/v1/volumes/destroy", { handles: b }));
    }),
  );
  const bareMs = ms(tBare);
  await waitDead();
  const bareDeadMs = ms(tBare);
  bare.close();
  if (liveCounts().some((n) => n !== expectedLive)) throw new Error("bare loop left volumes behind");

  console.log(`DELETE of ${doomed.length} containers (one statement, owners SET NULL): ${fmt(deleteMs)}`);
  console.log(`collection until rows and live/ are clean: ${fmt(gcMs)} (${rounds} activations)`);
  console.log(`bare destroy loop, same handles:           ${fmt(bareMs)}`);
  console.log(`ratio: ${(gcMs / bareMs).toFixed(2)}x   (target ≤ 1.3x)`);
  console.log(
    `until dead/ drained too: collection ${fmt(gcDeadMs)}, bare ${fmt(bareDeadMs)}, ratio ${(gcDeadMs / bareDeadMs).toFixed(2)}x`,
  );

  // ---- 2. the mark statement alone ----
  // The orphans come back as rows (created, ownerless) and the mark runs over the whole table.
  // Handles from the column's default, as every volume the database creates gets them.
  await db.query(
    `insert into gk_public.volumes (worker_id, state)
     select w.id, 'created' from gk_public.workers w, generate_series(1, $1) where w.name like 'bench-%'`,
    [Math.round(doomed.length / AGENTS)],
  );
  await db.query("vacuum analyze gk_public.volumes");
  const total = (await db.query("select count(*)::int as n from gk_public.volumes")).rows[0].n;
  // What any state change of those rows costs in this table (its indexes, the key's check per
  // row): the same UPDATE by id, without the orphan search and locks; rolled back.
  const orphanIds = (
    await db.query<{ id: string }>(
      "select id from gk_public.volumes v where state = 'created' and container_id is null and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)",
    )
  ).rows.map((r) => r.id);
  const sameTableMs = await (async () => {
    const c = await pool.connect();
    try {
      await c.query("begin");
      const t = process.hrtime.bigint();
      await c.query(
        "update gk_public.volumes set state = 'destroying', state_changed_at = now(), attempts = 0, last_error = null, next_attempt_at = now() where id = any($1::bigint[])",
        [orphanIds],
      );
      return ms(t);
    } finally {
      await c.query("rollback");
      c.release();
    }
  })();
  await db.query("vacuum analyze gk_public.volumes");
  // The mark in its own transaction, so its row versions (none can be HOT: state is in the
  // composite key's unique index) are counted before it commits; its time is the statement's
  // plus the commit's.
  const { markMs, marked, hot, walMb } = await (async () => {
    const c = await pool.connect();
    try {
      // pg_stat_xact_user_tables also holds counts of this connection's earlier transactions
      // not yet flushed (PostgreSQL 15), so the mark's are the difference across it.
      const counts = async () =>
        (
          await c.query(
            "select coalesce(sum(n_tup_upd), 0)::int as upd, coalesce(sum(n_tup_hot_upd), 0)::int as hot from pg_stat_xact_user_tables where relid = 'gk_public.volumes'::regclass",
          )
        ).rows[0] as { upd: number; hot: number };
      const lsn = (await c.query("select pg_current_wal_insert_lsn() as l")).rows[0].l;
      await c.query("begin");
      const before = await counts();
      const t = process.hrtime.bigint();
      const n = (await c.query("select gk_private.volumes_mark_orphans() as n")).rows[0].n;
      const took = ms(t);
      const after = await counts();
      const tCommit = process.hrtime.bigint();
      await c.query("commit");
      const committed = took + ms(tCommit);
      const wal = (await c.query("select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)::float8 / 1e6 as mb", [lsn])).rows[0].mb;
      return {
        markMs: committed,
        marked: n,
        hot: `${after.hot - before.hot} of ${after.upd - before.upd} updates HOT`,
        walMb: wal as number,
      };
    } finally {
      c.release();
    }
  })();
  await db.query("create table bench_plain (id bigint primary key, state text, at timestamptz)");
  await db.query("insert into bench_plain select g, 'created', now() from generate_series(1, $1) g", [total]);
  await db.query("create unique index on bench_plain (id, state)");
  await db.query("vacuum analyze bench_plain");
  const tPlain = process.hrtime.bigint();
  await db.query("update bench_plain set state = 'destroying', at = now() where id <= $1", [marked]);
  const plainMs = ms(tPlain);
  console.log(
    `mark statement: ${marked} of ${total} volumes in ${fmt(markMs)} (target ≤ 1 s); bare UPDATE of as many rows: ${fmt(plainMs)} (${(markMs / plainMs).toFixed(2)}x)`,
  );
  console.log(
    `  the same rows of gk_public.volumes updated by id (no search, no locks): ${fmt(sameTableMs)} (${(markMs / sameTableMs).toFixed(2)}x)`,
  );
  console.log(`  ${hot}; WAL written meanwhile (any database on the server): ${walMb.toFixed(1)} MB`);

  // ---- 3. one agent's report of 100,000 × SCALE handles ----
  const n = Math.round(100_000 * SCALE);
  const one = (
    await db.query(
      "insert into gk_public.workers (name, state, address, expires_at) values ('report', 'running', 'https://127.0.0.1:1', now() + interval '1 hour') returning id",
    )
  ).rows[0].id;
  await db.query("insert into gk_public.volumes (worker_id, state) select $1, 'created' from generate_series(1, $2)", [one, n]);
  await db.query("vacuum analyze gk_public.volumes");
  // The report: all but 1% of the rows, plus 1% handles the database does not know.
  const { rows: rep } = await db.query<{ h: string }>(
    "select handle::text as h from gk_public.volumes where worker_id = $1 order by id offset $2",
    [one, Math.round(n / 100)],
  );
  const report = [...rep.map((r) => r.h), ...Array.from({ length: Math.round(n / 100) }, () => crypto.randomUUID())];
  // Bare costs of the same work beside it: the same handles sent and counted (the round trip and
  // the array's parsing), and the same full join of the worker's rows with them, read only.
  const timed = async (sql: string, params: unknown[]) => {
    const t = process.hrtime.bigint();
    const { rows } = await db.query(sql, params);
    return { ms: ms(t), row: rows[0] };
  };
  // Passed as the collector passes them (reconcileReport: one comma-joined text); the uuid[]
  // parameter it replaced is timed too.
  const asArray = await timed("select cardinality($1::uuid[]) as n", [report]);
  const sent = await timed("select cardinality(string_to_array($1, ',')::uuid[]) as n", [report.join(",")]);
  const joined = await timed(
    `select count(*) filter (where v.id is null or r.h is null)::int as n
       from (select * from gk_public.volumes where worker_id = $1) v full join unnest(string_to_array($2, ',')::uuid[]) r(h) on r.h = v.handle`,
    [one, report.join(",")],
  );
  const t = process.hrtime.bigint();
  const reconciled = { row: { r: await reconcileReport(plain.query, one, report, []) }, ms: 0 };
  reconciled.ms = ms(t);
  console.log(
    `report of ${report.length} handles reconciled in one statement: ${fmt(reconciled.ms)} (target ≤ 2 s): ${JSON.stringify(reconciled.row.r)}`,
  );
  console.log(`  (the same handles as a uuid[] parameter, sent and counted: ${fmt(asArray.ms)})`);
  console.log(
    `  bare: the handles sent and counted ${fmt(sent.ms)} (${(reconciled.ms / sent.ms).toFixed(2)}x); the same full join, read only, ${fmt(joined.ms)} (${(reconciled.ms / joined.ms).toFixed(2)}x, ${joined.row.n} rows differ)`,
  );
} finally {
  for (const a of agents) await a.proc.stop("SIGKILL");
  await peers.close();
  await pool.end();
  await scratch.drop();
}
