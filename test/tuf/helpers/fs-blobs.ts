// The real filesystem blob store, wrapped so a test can take it "down" (every call fails, as
// when the store is unreachable). The wrapper is the only fake: storage is the real adapter.
import { FsBlobStore } from "../../../src/adapters/blobs/fs.ts";
import { BlobStoreUnavailableError, type BlobStore, type BlobStream, type ListPage } from "../../../src/adapters/blobs/types.ts";

export class TestFsBlobStore implements BlobStore {
  readonly kind = "fs";
  readonly root: string;
  readonly #inner: FsBlobStore;
  /** When set, every call fails with BlobStoreUnavailableError(down). */
  down: string | null = null;
  constructor(root: string) {
    this.root = root;
    this.#inner = new FsBlobStore(root);
  }
  #check() {
    if (this.down) throw new BlobStoreUnavailableError(this.down);
  }
  async put(key: string, body: Uint8Array | string, opts?: { contentType?: string }): Promise<void> {
    this.#check();
    return this.#inner.put(key, body, opts);
  }
  async get(key: string): Promise<Uint8Array | null> {
    this.#check();
    return this.#inner.get(key);
  }
  async getStream(key: string, opts?: { signal?: AbortSignal }): Promise<BlobStream | null> {
    this.#check();
    return this.#inner.getStream(key, opts);
  }
  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage> {
    this.#check();
    return this.#inner.list(prefix, opts);
  }
  async deleteMany(keys: string[]): Promise<void> {
    this.#check();
    return this.#inner.deleteMany(keys);
  }
}
