// Object storage as Groundskeeper sees it. Implementations: filesystem (default), S3.
import type { Readable } from "node:stream";

export interface ListPage {
  keys: string[];
  /** Pass back as `after` for the next page; absent on the last page. */
  next?: string;
}

export interface BlobStream {
  body: Readable;
  length?: number;
}

export interface BlobStore {
  readonly kind: string;
  /** Writes atomically: a reader sees the old object or the new one, never a partial one. */
  put(key: string, body: Uint8Array | string, opts?: { contentType?: string }): Promise<void>;
  /** null when the object does not exist. */
  get(key: string): Promise<Uint8Array | null>;
  /**
   * The object as a stream (for objects too large to hold in memory), with its length when the
   * store knows it; null when it does not exist. `signal` aborts the read (the stream errors).
   */
  getStream(key: string, opts?: { signal?: AbortSignal }): Promise<BlobStream | null>;
  /** Keys under `prefix` in lexicographic order, strictly after `after`, at most `limit`. */
  list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage>;
  /** Deletes the keys; keys that do not exist are not an error. */
  deleteMany(keys: string[]): Promise<void>;
  /** Stores with directories (filesystem): removes the empty ones under a prefix, and it if empty. */
  pruneEmpty?(prefix: string): Promise<void>;
}

/** Thrown by adapters when the store cannot be reached: the caller keeps the item pending and retries. */
export class BlobStoreUnavailableError extends Error {
  override name = "BlobStoreUnavailableError";
}
