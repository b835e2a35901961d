// Deletes every object under a prefix page by page (list + batch delete). After each page the
// caller is told the cursor (the last deleted key) and may persist it; a purge resumed from a
// saved cursor finishes the job. Keys outside the prefix are never deleted.
import type { BlobStore } from "./types.ts";

export interface PurgePrefixOptions {
  /** Keys per list/delete round. Default 1000 (one S3 DeleteObjects call). */
  pageSize?: number;
  /** Resume after this key (a cursor saved from onProgress). */
  after?: string;
  /** Deleted count carried over from before a resume (reported in onProgress and the result). */
  deletedSoFar?: number;
  /** Called after each page is deleted; persist `cursor` here. A throw stops the purge. */
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
  if (opts.after !== undefined && !opts.after.startsWith(prefix))
    throw new Error(`resume cursor ${JSON.stringify(opts.after)} is not under prefix ${JSON.stringify(prefix)}`);
  let cursor = opts.after;
  let deleted = opts.deletedSoFar ?? 0;
  let pages = 0;
  for (;;) {
    const page = await store.list(prefix, { limit: pageSize, ...(cursor !== undefined ? { after: cursor } : {}) });
    if (page.keys.length === 0) break;
    const outside = page.keys.find((k) => !k.startsWith(prefix));
    if (outside !== undefined)
      throw new Error(`blob store listed ${JSON.stringify(outside)} under prefix ${JSON.stringify(prefix)}; refusing to delete`);
    await store.deleteMany(page.keys);
    deleted += page.keys.length;
    pages++;
    cursor = page.keys[page.keys.length - 1]!;
    await opts.onProgress?.(cursor, deleted);
    if (page.next === undefined) break;
  }
  return cursor !== undefined ? { deleted, pages, cursor } : { deleted, pages };
}
