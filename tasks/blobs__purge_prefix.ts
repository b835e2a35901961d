// Deletes a purge item's blob prefix page by page (list + batch delete, PARALLEL pages at once),
// recording write-ahead progress (src/adapters/blobs/purge-prefix.ts) so a killed worker's
// successor resumes where it stopped with an exact progress_count. One worker at a time per
// item (a session advisory lock, released when the session dies); the progress heartbeat keeps
// the bin reconciler from re-enqueueing an item that is being worked on.
import { z } from "zod";
import { purgePrefix } from "../src/adapters/blobs/purge-prefix.ts";
import { errorMessage } from "../src/lib/errors.ts";
import { requireService } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

const PAGE_SIZE = 1000;
// Pages deleted at once: the filesystem store's unlinks and S3's DeleteObjects calls overlap.
const PARALLEL = 4;
const LOCK_CLASS = 4_711_0310;

export default defineTask({
  payload: z.object({ id: z.union([z.number().int().positive(), z.string().regex(/^[1-9][0-9]*$/)]) }).strict(),
  async run({ id }, { services, helpers }) {
    const blobs = requireService(services, "blobs");
    await helpers.withPgClient(async (c) => {
      const { rows: lock } = await c.query<{ ok: boolean }>("select pg_try_advisory_lock($1, hashtext($2::text)) as ok", [
        LOCK_CLASS,
        String(id),
      ]);
      if (!lock[0].ok) return; // another worker is purging it; the lease brings it back if that one dies
      try {
        const { rows } = await c.query<{
          kind: string;
          ref: string;
          progress_after: string | null;
          progress_pending_until: string | null;
          progress_count: string;
        }>(
          "select kind, ref, progress_after, progress_pending_until, progress_count from gk_public.purge_items where id = $1 and completed_at is null",
          [id],
        );
        const item = rows[0];
        if (!item) return;
        if (item.kind !== "blob_prefix") throw new Error(`purge item ${id} has kind ${item.kind}, not blob_prefix`);
        try {
          await purgePrefix(blobs, item.ref, {
            pageSize: PAGE_SIZE,
            parallel: PARALLEL,
            ...(item.progress_after != null ? { after: item.progress_after } : {}),
            ...(item.progress_pending_until != null ? { pendingUntil: item.progress_pending_until } : {}),
            deletedSoFar: Number(item.progress_count),
            onIntent: async (pendingUntil, counted) => {
              await c.query("select gk_private.purge_item_progress($1, null, $2, $3)", [id, pendingUntil, counted]);
            },
            onProgress: async (cursor) => {
              await c.query("select gk_private.purge_item_progress($1, $2, null, null)", [id, cursor]);
            },
          });
          await c.query("select gk_private.purge_item_completed($1)", [id]);
        } catch (e) {
          await c.query("select gk_private.purge_item_failed($1, $2)", [id, errorMessage(e)]);
          throw e;
        }
      } finally {
        await c.query("select pg_advisory_unlock($1, hashtext($2::text))", [LOCK_CLASS, String(id)]);
      }
    });
  },
});
