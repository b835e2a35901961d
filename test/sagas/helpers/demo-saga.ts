// A small saga over test tables, shaped like the export coordinator's create saga: take a
// requested record (generation guard) → pick a node → attach the record on the node → live.
// Undo detaches and returns the record to requested. The "node" is a table (its attachments
// are the external effect); saga_demo_calls logs every action and undo with the worker's pid,
// so tests see what ran again after a kill.
//   GK_TEST_SAGA_HOLD=attach | undo:attach   hang right after the attach (or detach) took effect,
//                                            before it is recorded, until killed (worker tests)
import { z } from "zod";
import { defineSaga, type SagaContext } from "../../../src/worker/saga.ts";
import type { Queryable } from "../../helpers/fixtures/index.ts";

export const DEMO_TABLES = `
  create table if not exists public.saga_demo_nodes (
    name text primary key,
    in_service boolean not null default true,
    -- attach fails after attaching (a timeout after the node did it); detach fails this many times
    refuse_attach boolean not null default false,
    detach_failures int not null default 0
  );
  create table if not exists public.saga_demo_records (
    id uuid primary key default gen_random_uuid(),
    state text not null default 'requested' check (state in ('requested', 'assigning', 'live')),
    generation bigint not null default 0,
    operating_saga_id uuid,
    node text,
    check ((state = 'assigning') = (operating_saga_id is not null)),
    check ((state = 'live') = (node is not null))
  );
  create table if not exists public.saga_demo_attachments (
    node text not null references public.saga_demo_nodes (name) on delete cascade,
    record_id uuid not null references public.saga_demo_records (id) on delete cascade,
    primary key (node, record_id)
  );
  create table if not exists public.saga_demo_calls (
    id bigint generated always as identity primary key,
    saga_id uuid not null,
    step text not null,
    kind text not null,
    pid int not null
  );`;

type Params = { record_id: string; generation: number };
type Ctx = SagaContext<Params>;

async function called(ctx: Ctx, step: string, kind: "action" | "undo") {
  await ctx.db.query("insert into public.saga_demo_calls (saga_id, step, kind, pid) values ($1, $2, $3, $4)", [
    ctx.sagaId,
    step,
    kind,
    process.pid,
  ]);
}

async function holdIfAsked(hold: string): Promise<void> {
  if (process.env.GK_TEST_SAGA_HOLD === hold) await new Promise(() => {});
}

function conflict(what: string, row: unknown): Error {
  return new Error(`conflict: cannot ${what}: record is ${JSON.stringify(row)}`);
}

export const demoSaga = defineSaga({
  name: "demo__attach_record",
  params: z.object({ record_id: z.uuid(), generation: z.number().int().positive() }).strict(),
  steps: [
    {
      // requested → assigning, held by this saga at its generation (the row lock).
      name: "take",
      async action(ctx) {
        await called(ctx, "take", "action");
        const { record_id: id, generation } = ctx.params;
        const taken = await ctx.db.query(
          `update public.saga_demo_records set state = 'assigning', operating_saga_id = $2, generation = $3
            where id = $1 and state = 'requested' and operating_saga_id is null and generation < $3`,
          [id, ctx.sagaId, generation],
        );
        if (taken.rowCount) return;
        const { rows } = await ctx.db.query("select state, operating_saga_id, generation from public.saga_demo_records where id = $1", [
          id,
        ]);
        const r = rows[0];
        // Taken by this very saga before (the action runs again after a kill): done.
        if (r?.state === "assigning" && r.operating_saga_id === ctx.sagaId && Number(r.generation) === generation) return;
        throw conflict(`take at generation ${generation}`, r);
      },
      async undo(ctx) {
        await called(ctx, "take", "undo");
        // Only if this saga holds it: a duplicate's undo leaves the winner's record alone.
        await ctx.db.query(
          `update public.saga_demo_records set state = 'requested', operating_saga_id = null
            where id = $1 and state = 'assigning' and operating_saga_id = $2`,
          [ctx.params.record_id, ctx.sagaId],
        );
      },
    },
    {
      name: "pick_node",
      async action(ctx) {
        await called(ctx, "pick_node", "action");
        const { rows } = await ctx.db.query("select name from public.saga_demo_nodes where in_service order by name limit 1");
        if (!rows[0]) throw new Error("no node in service");
        return { node: rows[0].name };
      },
    },
    {
      name: "attach",
      async action(ctx) {
        await called(ctx, "attach", "action");
        const { node } = ctx.output<{ node: string }>("pick_node");
        await ctx.db.query("insert into public.saga_demo_attachments (node, record_id) values ($1, $2) on conflict do nothing", [
          node,
          ctx.params.record_id,
        ]);
        await holdIfAsked("attach");
        const { rows } = await ctx.db.query("select refuse_attach from public.saga_demo_nodes where name = $1", [node]);
        if (rows[0].refuse_attach) throw new Error(`node ${node} timed out after attaching`);
      },
      async undo(ctx) {
        await called(ctx, "attach", "undo");
        const { node } = ctx.output<{ node: string }>("pick_node");
        const { rows } = await ctx.db.query(
          "update public.saga_demo_nodes set detach_failures = detach_failures - 1 where name = $1 and detach_failures > 0 returning 1",
          [node],
        );
        if (rows.length) throw new Error(`node ${node} unreachable`);
        await ctx.db.query("delete from public.saga_demo_attachments where node = $1 and record_id = $2", [node, ctx.params.record_id]);
        await holdIfAsked("undo:attach");
      },
    },
    {
      // assigning → live on the node, released (no saga holds a live record).
      name: "go_live",
      async action(ctx) {
        await called(ctx, "go_live", "action");
        const { record_id: id, generation } = ctx.params;
        const { node } = ctx.output<{ node: string }>("pick_node");
        const moved = await ctx.db.query(
          `update public.saga_demo_records set state = 'live', operating_saga_id = null, node = $4
            where id = $1 and state = 'assigning' and operating_saga_id = $2 and generation = $3`,
          [id, ctx.sagaId, generation, node],
        );
        if (moved.rowCount) return;
        const { rows } = await ctx.db.query("select state, node, generation from public.saga_demo_records where id = $1", [id]);
        if (rows[0]?.state === "live" && rows[0].node === node && Number(rows[0].generation) === generation) return;
        throw conflict("go live", rows[0]);
      },
      async undo(ctx) {
        await called(ctx, "go_live", "undo");
        await ctx.db.query(
          `update public.saga_demo_records set state = 'assigning', operating_saga_id = $2, node = null
            where id = $1 and state = 'live' and generation = $3 and operating_saga_id is null`,
          [ctx.params.record_id, ctx.sagaId, ctx.params.generation],
        );
      },
    },
  ],
});

/** A requested record and a node in service. */
export async function demoRecord(db: Queryable, node = "node-a"): Promise<string> {
  await db.query("insert into public.saga_demo_nodes (name) values ($1) on conflict do nothing", [node]);
  const { rows } = await db.query("insert into public.saga_demo_records default values returning id");
  return rows[0].id;
}

/** The params a reconciler would start the saga with: the record's next generation. */
export async function demoParams(db: Queryable, recordId: string): Promise<Params> {
  const { rows } = await db.query("select generation from public.saga_demo_records where id = $1", [recordId]);
  return { record_id: recordId, generation: Number(rows[0].generation) + 1 };
}

/** What undo must restore: the record (without its generation, which only grows) and its attachments. */
export async function demoSnapshot(db: Queryable, recordId: string) {
  const { rows } = await db.query(
    `select r.state, r.operating_saga_id, r.node,
            array(select a.node from public.saga_demo_attachments a where a.record_id = r.id order by 1) as attached
       from public.saga_demo_records r where r.id = $1`,
    [recordId],
  );
  return rows[0];
}
