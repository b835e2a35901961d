// The delete saga: take the live record marked for deletion with its generation, detach it from
// its node (an attachment the node no longer has, or a node that is expunged or silent, counts as
// detached), record it deleted — last, because once deleted nothing starts its deletion again.
// Undo returns the record to live (still marked), so the coordinator's next activation retries.
import { z } from "zod";
import { defineSaga, type SagaContext } from "../../worker/saga.ts";
import { detachOkIfGone } from "./create.ts";

const Params = z.object({ export_id: z.uuid(), generation: z.number().int().positive() }).strict();
type P = z.infer<typeof Params>;

export const deleteExport = defineSaga({
  name: "exports__delete",
  params: Params,
  steps: [
    {
      name: "take",
      async action(ctx: SagaContext<P>) {
        const { rows } = await ctx.db.query("select node_id, attachment_id from gk_private.exports_take_for_delete($1, $2, $3)", [
          ctx.params.export_id,
          ctx.sagaId,
          ctx.params.generation,
        ]);
        if (!rows[0])
          throw new Error(
            `export ${ctx.params.export_id} is not live and marked below generation ${ctx.params.generation} (another saga has it)`,
          );
        return { node_id: rows[0].node_id, attachment_id: rows[0].attachment_id };
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_release_delete($1, $2)", [ctx.params.export_id, ctx.sagaId]);
      },
    },
    {
      name: "detach",
      async action(ctx: SagaContext<P>) {
        const { node_id, attachment_id } = ctx.output<{ node_id: string; attachment_id: string }>("take");
        // Always the same output, so a replay (the node now gone) stays idempotent.
        await detachOkIfGone(ctx, node_id, attachment_id);
      },
    },
    {
      name: "deleted",
      async action(ctx: SagaContext<P>) {
        const { rows } = await ctx.db.query("select id from gk_private.exports_deleted($1, $2)", [ctx.params.export_id, ctx.sagaId]);
        if (!rows[0]) throw new Error(`export ${ctx.params.export_id} is no longer deleting for this saga`);
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_undelete($1, $2, $3)", [ctx.params.export_id, ctx.sagaId, ctx.params.generation]);
      },
    },
  ],
});
