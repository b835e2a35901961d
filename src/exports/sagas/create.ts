// The create saga (after omicron's user-data-export create): take the requested record with its
// generation, place it on an in-service node, have the node attach the blob, record it live.
// Undo detaches and returns the record to requested, so the coordinator's next activation tries
// again (on any node). A duplicate start (two coordinators) fails to take the row and unwinds,
// changing nothing.
import { z } from "zod";
import { PeerHttpError } from "../../peers/client.ts";
import { defineSaga, type SagaContext } from "../../worker/saga.ts";
import { blobPath } from "../agent-role.ts";
import { exportNodes, type NodeRef } from "../nodes.ts";

const Params = z.object({ export_id: z.uuid(), generation: z.number().int().positive() }).strict();
type P = z.infer<typeof Params>;

interface Taken {
  blob_key: string;
  sha256: string;
  length: number;
}
interface Placed extends NodeRef {
  attachment_id: string;
}

/** Detaches, treating a node that is gone (expunged, or silent past its heartbeat) as detached. */
export async function detachOkIfGone(ctx: SagaContext<unknown>, nodeId: string, attachmentId: string): Promise<"detached" | "gone"> {
  const { rows } = await ctx.db.query("select id, worker_id, address, state, fresh from gk_private.export_node($1)", [nodeId]);
  const node = rows[0];
  const nodes = exportNodes(ctx.services);
  if (!node?.worker_id) return "gone";
  const gone = node.state === "expunged" || !node.fresh;
  try {
    const client = await nodes.client(node);
    await client.request("DELETE", `/v1/exports/${attachmentId}`, undefined, gone ? 2_000 : nodes.opts.timeoutMs);
    return "detached";
  } catch (e) {
    if (e instanceof PeerHttpError && e.status === 404) return "detached";
    // An expunged or silent node is asked once, as a courtesy; it no longer serves anyone.
    if (gone) {
      ctx.log.warn({ node: nodeId, attachment: attachmentId, err: (e as Error).message }, "exports: node is gone; detach skipped");
      return "gone";
    }
    throw e;
  }
}

export const createExport = defineSaga({
  name: "exports__create",
  params: Params,
  steps: [
    {
      name: "take",
      async action(ctx: SagaContext<P>) {
        const { rows } = await ctx.db.query("select id, resource_type, resource_id from gk_private.exports_take_for_create($1, $2, $3)", [
          ctx.params.export_id,
          ctx.sagaId,
          ctx.params.generation,
        ]);
        if (!rows[0])
          throw new Error(
            `export ${ctx.params.export_id} is not requested below generation ${ctx.params.generation} (another saga has it)`,
          );
        const img = await ctx.db.query("select blob_key, sha256, length from gk_public.images where id = $1", [rows[0].resource_id]);
        if (!img.rows[0]) throw new Error(`image ${rows[0].resource_id} was deleted`);
        return { blob_key: img.rows[0].blob_key, sha256: img.rows[0].sha256, length: Number(img.rows[0].length) };
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_release_create($1, $2)", [ctx.params.export_id, ctx.sagaId]);
      },
    },
    {
      name: "place",
      async action(ctx: SagaContext<P>) {
        const { rows } = await ctx.db.query(
          "select node_id as id, worker_id, address, attachment_id from gk_private.exports_place($1, $2)",
          [ctx.params.export_id, ctx.sagaId],
        );
        const r = rows[0];
        return { id: r.id, worker_id: r.worker_id, address: r.address, attachment_id: r.attachment_id };
      },
    },
    {
      name: "attach",
      async action(ctx: SagaContext<P>) {
        const blob = ctx.output<Taken>("take");
        const node = ctx.output<Placed>("place");
        const nodes = exportNodes(ctx.services);
        const client = await nodes.client(node);
        await client.request("POST", "/v1/exports", { attachment_id: node.attachment_id, ...blob }, nodes.opts.attachTimeoutMs);
        return { url: `${node.address}${blobPath(node.attachment_id)}` };
      },
      async undo(ctx) {
        const node = ctx.output<Placed>("place");
        await detachOkIfGone(ctx, node.id, node.attachment_id);
      },
    },
    {
      name: "live",
      async action(ctx: SagaContext<P>) {
        const { url } = ctx.output<{ url: string }>("attach");
        const { rows } = await ctx.db.query("select id from gk_private.exports_live($1, $2, $3)", [ctx.params.export_id, ctx.sagaId, url]);
        if (!rows[0]) throw new Error(`export ${ctx.params.export_id} is no longer assigning for this saga`);
      },
      async undo(ctx) {
        await ctx.db.query("select gk_private.exports_unlive($1, $2, $3)", [ctx.params.export_id, ctx.sagaId, ctx.params.generation]);
      },
    },
  ],
});
