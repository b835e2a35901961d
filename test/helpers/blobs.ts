// Counting a store's keys under a prefix through its own listing (what a user of the store sees).
import type { BlobStore } from "../../src/adapters/blobs/types.ts";

export async function countKeys(store: BlobStore, prefix: string): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.list(prefix, { limit: 1000, ...(after ? { after } : {}) });
    n += page.keys.length;
    if (!page.next) return n;
    after = page.keys[page.keys.length - 1];
  }
}
