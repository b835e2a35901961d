// The S3 blob store against a real S3-protocol server (s3rver): the shared contract, batches
// over 1000 keys, and the server going away in the middle of a purge.
import { afterAll, describe, expect, it } from "vitest";
import { purgePrefix } from "../../src/adapters/blobs/purge-prefix.ts";
import { BlobStoreUnavailableError } from "../../src/adapters/blobs/types.ts";
import { startS3Server } from "../helpers/s3.ts";
import { blobStoreContract } from "./blob-contract.ts";

const server = await startS3Server();
afterAll(() => server.dispose());
const store = server.store();

blobStoreContract("s3 (s3rver)", () => store, { atomicOverwrite: false });

describe("S3 blob store", () => {
  // s3rver deletes one object at a time (test/helpers/s3.ts): slow on a loaded machine.
  it("deletes more than 1000 keys in batches of at most 1000", { timeout: 180_000 }, async () => {
    const keys = Array.from({ length: 1050 }, (_, i) => `bulk/${String(i).padStart(5, "0")}`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, "x")));
    expect((await store.list("bulk/", { limit: 1000 })).next).toBe(keys[999]);
    await store.deleteMany([...keys, "bulk/missing-1", "bulk/missing-2"]);
    expect((await store.list("bulk/", { limit: 10 })).keys).toEqual([]);
  });

  it("server down → BlobStoreUnavailableError and nothing lost; back up → the purge resumes and finishes", async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `team-down/${String(i).padStart(2, "0")}`);
    for (const k of keys) await store.put(k, k);
    await store.put("team-downstairs/keep", "neighbour");
    let saved: string | undefined;
    let pages = 0;
    // The server dies after the first page was deleted and its cursor saved.
    await expect(
      purgePrefix(store, "team-down/", {
        pageSize: 4,
        onProgress: async (cursor) => {
          saved = cursor;
          if (++pages === 1) await server.stop();
        },
      }),
    ).rejects.toThrow(BlobStoreUnavailableError);
    expect(saved).toBe(keys[3]);
    await expect(store.put("x/y", "z")).rejects.toThrow(BlobStoreUnavailableError);
    await expect(store.get("x/y")).rejects.toThrow(BlobStoreUnavailableError);
    await server.start();
    expect((await store.list("team-down/", { limit: 100 })).keys).toEqual(keys.slice(4));
    const r = await purgePrefix(store, "team-down/", { pageSize: 4, after: saved!, deletedSoFar: 4 });
    expect(r.deleted).toBe(12);
    expect((await store.list("team-down/", { limit: 100 })).keys).toEqual([]);
    expect(Buffer.from((await store.get("team-downstairs/keep"))!).toString()).toBe("neighbour");
  });
});
