// Deletes every object under a prefix page by page (list + batch delete), resumably. Listing is
// sequential (each page starts strictly after the previous page's last key, so nothing is listed
// twice); up to `parallel` pages are deleted at once. Two cursors make a resume exact:
//   onIntent(pendingUntil, counted)  before a page is deleted: everything up to pendingUntil is
//                                    counted (write-ahead), whether or not its delete lands;
//   onProgress(cursor, deleted)      after the pages up to cursor are all deleted (in order).
// A purge resumed with `after` = the last cursor and `pendingUntil` re-lists from the cursor,
// deletes what is left without counting it twice, and counts only keys past pendingUntil. Keys
// outside the prefix are never deleted; at the end the store prunes directories it left empty.
import { compareKeys } from "./keys.ts";
import type { BlobStore } from "./types.ts";

export interface PurgePrefixOptions {
  /** Keys per list/delete round. Default 1000 (one S3 DeleteObjects call). */
  pageSize?: number;
  /** Pages deleted at once (listing stays sequential). Default 1. */
  parallel?: number;
  /** Resume after this key (a cursor saved from onProgress). */
  after?: string;
  /** Resume: keys up to here were already counted (saved from onIntent). */
  pendingUntil?: string;
  /** Deleted count carried over from before a resume (what onIntent last reported, if any). */
  deletedSoFar?: number;
  /** Called before a page is deleted, in order; persist both. A throw stops the purge. */
  onIntent?: (pendingUntil: string, counted: number) => void | Promise<void>;
  /** Called once every page up to `cursor` is deleted; persist `cursor`. A throw stops the purge. */
  onProgress?: (cursor: string, deletedSoFar: number) => void | Promise<void>;
}

export interface PurgePrefixResult {
  deleted: number;
  pages: number;
  cursor?: string;
}

export async function purgePrefix(store: BlobStore, prefix: string, opts: PurgePrefixOptions = {}): Promise<PurgePrefixResult> {
  // "team-a" would also match "team-ab/…": only whole path segments can be purged.
  if (!prefix?.endsWith("/") || prefix.startsWith("/"))
    throw new Error(`purge prefix must be a non-empty key prefix ending with '/': ${JSON.stringify(prefix)}`);
  const pageSize = opts.pageSize ?? 1000;
  const parallel = Math.max(1, opts.parallel ?? 1);
  for (const [name, key] of [
    ["resume cursor", opts.after],
    ["pending cursor", opts.pendingUntil],
  ] as const) {
    if (key !== undefined && !key.startsWith(prefix))
      throw new Error(`${name} ${JSON.stringify(key)} is not under prefix ${JSON.stringify(prefix)}`);
  }
  const counted = (key: string) => opts.pendingUntil !== undefined && compareKeys(key, opts.pendingUntil) <= 0;
  let listAfter = opts.after;
  let cursor = opts.after;
  let total = opts.deletedSoFar ?? 0; // counted, write-ahead
  let done = opts.deletedSoFar ?? 0; // counted and deleted, in order
  let pages = 0;
  // Pages in flight, in listing order; each settles to its last key and its new keys.
  const inflight: { last: string; fresh: number; deletion: Promise<void> }[] = [];
  const settleFirst = async () => {
    const p = inflight.shift()!;
    await p.deletion;
    cursor = p.last;
    done += p.fresh;
    pages++;
    await opts.onProgress?.(cursor, done);
  };
  try {
    for (;;) {
      const page = await store.list(prefix, { limit: pageSize, ...(listAfter !== undefined ? { after: listAfter } : {}) });
      if (page.keys.length === 0) break;
      const outside = page.keys.find((k) => !k.startsWith(prefix));
      if (outside !== undefined)
        throw new Error(`blob store listed ${JSON.stringify(outside)} under prefix ${JSON.stringify(prefix)}; refusing to delete`);
      const last = page.keys[page.keys.length - 1]!;
      const fresh = page.keys.filter((k) => !counted(k)).length;
      total += fresh;
      if (fresh > 0) await opts.onIntent?.(last, total);
      const deletion = store.deleteMany(page.keys);
      deletion.catch(() => {}); // observed in settleFirst, in order
      inflight.push({ last, fresh, deletion });
      listAfter = last;
      while (inflight.length >= parallel) await settleFirst();
      if (page.next === undefined) break;
    }
    while (inflight.length > 0) await settleFirst();
  } catch (e) {
    // Let the deletes already sent land before reporting (their pages stay counted by intent).
    await Promise.allSettled(inflight.map((p) => p.deletion));
    throw e;
  }
  // A purge killed between a store's deletes and its own tidying left empty directories behind.
  await store.pruneEmpty?.(prefix);
  return cursor !== undefined ? { deleted: done, pages, cursor } : { deleted: done, pages };
}
