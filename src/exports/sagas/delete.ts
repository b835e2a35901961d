// The delete saga: take the live record marked for deletion with its generation, detach it from
// its node (an attachment the node no longer has, or a node that is expunged or silent, counts as
// detached), record it deleted — last, because once deleted nothing starts its deletion again.
// Undo returns the record to live (still marked), so the coordinator's next activation retries.
// Started in batches like the create saga (src/exports/sagas/create.ts).
import { z } from "zod";
import { defineSaga, type SagaContext } from "../../worker/saga.ts";
import { batchArgs, detachOkIfGone, nodeRows, perSaga } from "./create.ts";

const Params = z.object({ export_id: z.uuid(), generation: z.number().int().positive() }).strict();
type P = z.infer<typeof Params>;
type Ctx = SagaContext<P>;

export const deleteExport = defineSaga({
  name: "exports__delete",
  params: Params,
  // As the create saga: only failures are events, one row update for take, detach and deleted.
  doneEvents: false,
  steps: [
    {
      name: "take",
      recordWithNext: true,
      async actionMany(ctxs: readonly Ctx[]) {
        const { rows } = await ctxs[0]!.db.query(
          "select id, node_id, attachment_id from gk_private.exports_take_for_delete_batch($1::uuid[], $2::uuid[], $3::bigint[])",
          batchArgs(ctxs),
        );
        return perSaga(
          ctxs,
          rows,
          (r) => r.id,
          (r) => ({ node_id: r.node_id, attachment_id: r.attachment_id }),
          (c) =>
            new Error(`export ${c.params.export_id} is not live and marked below generation ${c.params.generation} (another saga has it)`),
        );
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_release_delete($1, $2)", [ctx.params.export_id, ctx.sagaId]);
      },
    },
    {
      name: "detach",
      recordWithNext: true,
      async actionMany(ctxs: readonly Ctx[]) {
        const taken = ctxs.map((c) => c.output<{ node_id: string; attachment_id: string }>("take"));
        const nodes = await nodeRows(ctxs[0]!.db, [...new Set(taken.map((t) => t.node_id))]);
        // Always the same output, so a replay (the node now gone) stays idempotent.
        return Promise.all(
          ctxs.map(async (ctx, i) => {
            try {
              await detachOkIfGone(ctx, nodes.get(taken[i]!.node_id), taken[i]!.attachment_id);
              return null;
            } catch (e) {
              return e instanceof Error ? e : new Error(String(e));
            }
          }),
        );
      },
    },
    {
      name: "deleted",
      async actionMany(ctxs: readonly Ctx[]) {
        const [ids, sagas] = batchArgs(ctxs);
        const db = ctxs[0]!.db;
        const { rows } = await db.query("select id from gk_private.exports_deleted_batch($1::uuid[], $2::uuid[])", [ids, sagas]);
        // The resource may still exist (expunged node, lost attachment): the coordinator re-creates
        // its export now, not at its next tick (which may be 30 s away).
        if (rows.length) await db.query("select gk_private.reconciler_activate('exports__coordinate')");
        return perSaga(
          ctxs,
          rows,
          (r) => r.id,
          () => null,
          (c) => new Error(`export ${c.params.export_id} is no longer deleting for this saga`),
        );
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_undelete($1, $2, $3)", [ctx.params.export_id, ctx.sagaId, ctx.params.generation]);
      },
    },
  ],
});
