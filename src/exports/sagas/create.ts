// The create saga (after omicron's user-data-export create): take the requested record with its
// generation and place it on an in-service node (one statement), have the node attach the blob,
// record it live.
// Undo detaches and returns the record to requested, so the coordinator's next activation tries
// again (on any node). A duplicate start (two coordinators) fails to take the row and unwinds,
// changing nothing. The coordinator starts these sagas in batches (one job each): every step
// has an actionMany, so a batch is taken and placed in one statement and goes live in another,
// and the node calls are the only per-export cost. A record settled with its saga is written
// already taken and placed (sql/720, exports_settle_pending): its take only reads it.
import type pg from "pg";
import { z } from "zod";
import { PeerHttpError } from "../../peers/client.ts";
import { defineSaga, type SagaContext } from "../../worker/saga.ts";
import { blobPath } from "../agent-role.ts";
import { exportNodes, type NodeRef } from "../nodes.ts";

const Params = z.object({ export_id: z.uuid(), generation: z.number().int().positive() }).strict();
type P = z.infer<typeof Params>;
type Ctx = SagaContext<P>;

interface Taken {
  blob_key: string;
  sha256: string;
  length: number;
  node: NodeRef & { attachment_id: string };
}

/** One result per saga, in order, from rows keyed by export id (a missing row: `missing(ctx)`). */
export function perSaga<R>(ctxs: readonly Ctx[], rows: R[], key: (r: R) => string, ok: (r: R) => unknown, missing: (c: Ctx) => Error) {
  const by = new Map(rows.map((r) => [key(r), r]));
  return ctxs.map((c) => {
    const r = by.get(c.params.export_id);
    return r === undefined ? missing(c) : (ok(r) as never);
  });
}

/** The arrays a batch transition takes (sql/700_exports.sql): export ids, saga ids, generations. */
export function batchArgs(ctxs: readonly Ctx[]): [string[], string[], number[]] {
  return [ctxs.map((c) => c.params.export_id), ctxs.map((c) => c.sagaId), ctxs.map((c) => c.params.generation)];
}

export interface NodeRow {
  id: string;
  worker_id: string | null;
  address: string;
  state: string;
  fresh: boolean;
}

export async function nodeRows(db: pg.ClientBase, ids: string[]): Promise<Map<string, NodeRow>> {
  const { rows } = await db.query<NodeRow>(
    "select n.id, n.worker_id, n.address, n.state, n.expires_at > now() as fresh from gk_public.export_nodes n where n.id = any($1::uuid[])",
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

/** Detaches, treating a node that is gone (expunged, or silent past its heartbeat) as detached. */
export async function detachOkIfGone(
  ctx: SagaContext<unknown>,
  node: NodeRow | undefined,
  attachmentId: string,
): Promise<"detached" | "gone"> {
  const nodes = exportNodes(ctx.services);
  if (!node?.worker_id) return "gone";
  const gone = node.state === "expunged" || !node.fresh;
  try {
    const client = await nodes.client({ id: node.id, worker_id: node.worker_id, address: node.address });
    await client.request("DELETE", `/v1/exports/${attachmentId}`, undefined, gone ? 2_000 : nodes.opts.timeoutMs);
    return "detached";
  } catch (e) {
    if (e instanceof PeerHttpError && e.status === 404) return "detached";
    // An expunged or silent node is asked once, as a courtesy; it no longer serves anyone.
    if (gone) {
      ctx.log.warn({ node: node.id, attachment: attachmentId, err: (e as Error).message }, "exports: node is gone; detach skipped");
      return "gone";
    }
    throw e;
  }
}

/**
 * The take of a batch with each image's blob. The image is a probe by key per record (a LIMIT
 * keeps the planner from turning it into a join): as a join it hashed every image for each batch
 * of 25 (test/exports/sql.test.ts checks the plan).
 */
export const TAKE_SQL = `select t.id, t.export_id, t.resource_id, t.node_id, t.worker_id, t.address, t.attachment_id, t.nodes,
       i.blob_key, i.sha256, i.length
  from gk_private.exports_take_for_create_batch($1::uuid[], $2::uuid[], $3::bigint[]) t
  left join lateral (select i.blob_key, i.sha256, i.length from gk_public.images i
                      where t.resource_type = 'image' and i.id = t.resource_id limit 1) i on true`;

export const createExport = defineSaga({
  name: "exports__create",
  params: Params,
  // Thousands run in a launch: saga_events holds only what went wrong, and the row is updated
  // once for take, attach and live together (each replays cheaply: take finds its record, the
  // node answers 200 for an attachment it has).
  doneEvents: false,
  steps: [
    {
      name: "take",
      recordWithNext: true,
      async actionMany(ctxs: readonly Ctx[]) {
        // The image's blob in the same round trip (gone: that saga fails and unwinds).
        const { rows } = await ctxs[0]!.db.query(TAKE_SQL, batchArgs(ctxs));
        return perSaga(
          ctxs,
          rows,
          (r) => r.id,
          (r) => {
            if (!r.export_id) {
              return r.nodes === 0
                ? new Error("no in-service export node with a fresh heartbeat")
                : new Error(`export ${r.id} is not requested below this saga's generation (another saga has it)`);
            }
            if (!r.blob_key) return new Error(`image ${r.resource_id} was deleted`);
            const node = { id: r.node_id, worker_id: r.worker_id, address: r.address, attachment_id: r.attachment_id };
            return { blob_key: r.blob_key, sha256: r.sha256, length: Number(r.length), node } satisfies Taken;
          },
          (c) => new Error(`export ${c.params.export_id}: no answer from take`),
        );
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_release_create($1, $2)", [ctx.params.export_id, ctx.sagaId]);
      },
    },
    {
      name: "attach",
      recordWithNext: true,
      // The node calls in parallel (each node's client caps its connections).
      async actionMany(ctxs: readonly Ctx[]) {
        const nodes = exportNodes(ctxs[0]!.services);
        return Promise.all(
          ctxs.map(async (ctx) => {
            try {
              const { blob_key, sha256, length, node } = ctx.output<Taken>("take");
              const client = await nodes.client(node);
              const body = { attachment_id: node.attachment_id, blob_key, sha256, length };
              await client.request("POST", "/v1/exports", body, nodes.opts.attachTimeoutMs);
              return { path: blobPath(node.attachment_id) };
            } catch (e) {
              return e instanceof Error ? e : new Error(String(e));
            }
          }),
        );
      },
      async undo(ctx) {
        const { node } = ctx.output<Taken>("take");
        await detachOkIfGone(ctx, (await nodeRows(ctx.db, [node.id])).get(node.id), node.attachment_id);
      },
    },
    {
      name: "live",
      async actionMany(ctxs: readonly Ctx[]) {
        const [ids, sagas] = batchArgs(ctxs);
        const { rows } = await ctxs[0]!.db.query("select id from gk_private.exports_live_batch($1::uuid[], $2::uuid[])", [ids, sagas]);
        return perSaga(
          ctxs,
          rows,
          (r) => r.id,
          () => null,
          (c) => new Error(`export ${c.params.export_id} is no longer assigning for this saga`),
        );
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_unlive($1, $2, $3)", [ctx.params.export_id, ctx.sagaId, ctx.params.generation]);
      },
    },
  ],
});
