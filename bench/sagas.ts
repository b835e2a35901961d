// Benchmark: what driving an operation as a saga costs over doing its steps directly. A 4-step
// saga shaped like the export create saga (take a record with the generation guard, pick a node,
// attach, go live), each step one SQL statement, so the comparison is the worst case for the
// engine (real steps call nodes over HTTP and take milliseconds). Side by side in one run:
//   bare      the same 4 statements per record, on one connection
//   in-process runSaga per record on one connection (engine: lock, load, a transition + event per step)
//   worker    saga.start for every record, then graphile-worker jobs (concurrency 4) run them all
//   node bench/sagas.ts                 the local server on 5432 if it answers, else an embedded PostgreSQL
//   DATABASE_URL=postgres://… node bench/sagas.ts
//   BENCH_SAGAS=200 node bench/sagas.ts   fewer sagas (quick check; default 1,000 × BENCH_SCALE)
import { run } from "graphile-worker";
import { pino } from "pino";
import { z } from "zod";
import { createPool } from "../src/db/pool.ts";
import { quietWorkerLogger } from "../src/lib/log.ts";
import { defineSaga, type SagaContext } from "../src/worker/saga.ts";
import { scaled } from "./lib/scale.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

const N = Number(process.env.BENCH_SAGAS ?? scaled(1000, 20));
const services = { log: pino({ level: "silent" }) };

type P = { id: string; generation: number };
const SQL = {
  take: `update bench_records set state = 'assigning', saga = $2, generation = $3
          where id = $1 and state = 'requested' and saga is null and generation < $3`,
  pick: "select name from bench_nodes order by name limit 1",
  attach: "insert into bench_attachments (node, record_id) values ($1, $2) on conflict do nothing",
  live: `update bench_records set state = 'live', saga = null, node = $4
          where id = $1 and state = 'assigning' and saga = $2 and generation = $3`,
};

const saga = defineSaga({
  name: "bench__attach",
  params: z.object({ id: z.uuid(), generation: z.number().int() }),
  steps: [
    {
      name: "take",
      action: async (c: SagaContext<P>) => void (await c.db.query(SQL.take, [c.params.id, c.sagaId, c.params.generation])),
      undo: async (c) =>
        void (await c.db.query("update bench_records set state = 'requested', saga = null where id = $1 and saga = $2", [
          c.params.id,
          c.sagaId,
        ])),
    },
    { name: "pick_node", action: async (c) => ({ node: (await c.db.query(SQL.pick)).rows[0].name }) },
    {
      name: "attach",
      action: async (c) => void (await c.db.query(SQL.attach, [c.output<{ node: string }>("pick_node").node, c.params.id])),
      undo: async (c) => void (await c.db.query("delete from bench_attachments where record_id = $1", [c.params.id])),
    },
    {
      name: "go_live",
      action: async (c) =>
        void (await c.db.query(SQL.live, [c.params.id, c.sagaId, c.params.generation, c.output<{ node: string }>("pick_node").node])),
    },
  ],
});

const scratch = await scratchDatabase();
const pool = createPool(scratch.url, 8);
const ms = (t0: number) => performance.now() - t0;
try {
  await pool.query(`
    create table bench_nodes (name text primary key);
    insert into bench_nodes values ('node-a');
    create table bench_records (id uuid primary key default gen_random_uuid(), state text not null default 'requested',
                                generation bigint not null default 0, saga uuid, node text);
    create table bench_attachments (node text, record_id uuid, primary key (node, record_id));`);
  const records = async () =>
    (await pool.query<{ id: string }>("insert into bench_records select from generate_series(1, $1) returning id", [N])).rows.map(
      (r) => r.id,
    );

  // bare: the steps' statements, record by record.
  const bareIds = await records();
  const client = await pool.connect();
  let t0 = performance.now();
  for (const id of bareIds) {
    const fake = crypto.randomUUID();
    await client.query(SQL.take, [id, fake, 1]);
    const node = (await client.query(SQL.pick)).rows[0].name;
    await client.query(SQL.attach, [node, id]);
    await client.query(SQL.live, [id, fake, 1, node]);
  }
  const bare = ms(t0);

  // in-process: the engine on one connection (its jobs removed first: nothing else runs them).
  const inIds = await records();
  const inSagas = [];
  for (const id of inIds) inSagas.push(await saga.start(pool, { id, generation: 1 }));
  await pool.query("select graphile_worker.remove_job(key) from graphile_worker.jobs where task_identifier = $1", [saga.name]);
  t0 = performance.now();
  for (const id of inSagas) await saga.run(client, id, { services });
  const inProcess = ms(t0);
  client.release();

  // worker: start every saga, then let graphile-worker run the jobs.
  const wIds = await records();
  t0 = performance.now();
  for (const id of wIds) await saga.start(pool, { id, generation: 1 });
  const runner = await run({
    pgPool: pool,
    concurrency: 4,
    noHandleSignals: true,
    pollInterval: 100,
    taskList: { [saga.name]: saga.task(services) },
    logger: quietWorkerLogger(),
  });
  for (;;) {
    const { rows } = await pool.query("select count(*)::int as n from gk_public.sagas where finished_at is null");
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const worker = ms(t0);
  await runner.stop();

  const live = (await pool.query("select count(*)::int as n from bench_records where state = 'live'")).rows[0].n;
  if (live !== 3 * N) throw new Error(`expected ${3 * N} live records, found ${live}`);
  const pgVersion = (await pool.query("show server_version")).rows[0].server_version;
  console.log(`PostgreSQL ${pgVersion} (${scratch.where}), ${N} sagas of 4 one-statement steps`);
  console.log(`bare statements      ${bare.toFixed(0)} ms  (${((bare / N) * 1000).toFixed(0)} µs per record)`);
  console.log(`saga in-process      ${inProcess.toFixed(0)} ms  → ratio ${(inProcess / bare).toFixed(2)} to bare`);
  console.log(`saga through jobs    ${worker.toFixed(0)} ms  → ratio ${(worker / bare).toFixed(2)} to bare (start + 4 workers)`);
} finally {
  await pool.end();
  await scratch.drop();
}
