// The behaviour every blob store must have; run against the filesystem store and against S3
// (a real s3rver). S3's own ordering of keys is the reference the filesystem store must match.
import { describe, expect, it } from "vitest";
import { InvalidBlobKeyError, compareKeys } from "../../src/adapters/blobs/keys.ts";
import { purgePrefix } from "../../src/adapters/blobs/purge-prefix.ts";
import type { BlobStore } from "../../src/adapters/blobs/types.ts";

const text = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("utf8"));

async function listAll(store: BlobStore, prefix: string, limit: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list(prefix, after === undefined ? { limit } : { limit, after });
    pages++;
    keys.push(...page.keys);
    if (page.next === undefined) return { keys, pages };
    expect(page.keys.length).toBe(limit);
    after = page.next;
  }
}

export interface ContractOptions {
  /**
   * Whether the server under test replaces objects atomically. AWS S3 does; s3rver does not (it
   * streams the new body into the object file in place), so against s3rver this case is not run.
   */
  atomicOverwrite: boolean;
}

export function blobStoreContract(name: string, getStore: () => BlobStore, opts: ContractOptions): void {
  describe(`blob store contract: ${name}`, () => {
    it("puts and gets strings and bytes; a missing key is null", async () => {
      const s = getStore();
      await s.put("rt/hello.txt", "hello", { contentType: "text/plain" });
      await s.put("rt/bytes.bin", new Uint8Array([0, 1, 2, 255]));
      expect(text(await s.get("rt/hello.txt"))).toBe("hello");
      expect([...(await s.get("rt/bytes.bin"))!]).toEqual([0, 1, 2, 255]);
      expect(await s.get("rt/missing")).toBeNull();
      await s.put("rt/empty", "");
      expect((await s.get("rt/empty"))!.length).toBe(0);
    });

    it("streams an object with its length; a missing key is null; an aborted read errors", async () => {
      const s = getStore();
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 7, 0);
      for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i % 251;
      await s.put("stream/big.bin", bytes);
      const got = await s.getStream("stream/big.bin");
      expect(got?.length).toBe(bytes.length);
      const chunks: Buffer[] = [];
      for await (const c of got!.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      expect(await s.getStream("stream/missing")).toBeNull();
      const abort = new AbortController();
      const cut = await s.getStream("stream/big.bin", { signal: abort.signal });
      abort.abort();
      await expect(
        (async () => {
          for await (const _ of cut!.body) {
          }
        })(),
      ).rejects.toThrow();
    });

    if (opts.atomicOverwrite)
      it("overwrites atomically: concurrent readers see the old or the new object, never a mix", async () => {
        const s = getStore();
        const size = 512 * 1024;
        const A = Buffer.alloc(size, "a");
        const B = Buffer.alloc(size + 1000, "b");
        await s.put("atomic/obj", A);
        let writing = true;
        const writer = (async () => {
          for (let i = 0; i < 12; i++) await s.put("atomic/obj", i % 2 ? A : B);
          writing = false;
        })();
        const seen = new Set<string>();
        while (writing) {
          const got = Buffer.from((await s.get("atomic/obj"))!);
          const ok = got.equals(A) || got.equals(B);
          if (!ok) throw new Error(`partial object seen: ${got.length} bytes, first ${got.subarray(0, 1)} last ${got.subarray(-1)}`);
          seen.add(got.equals(A) ? "A" : "B");
        }
        await writer;
        expect(Buffer.from((await s.get("atomic/obj"))!).equals(A)).toBe(true);
      });

    it("lists in byte order with after/limit paging", async () => {
      const s = getStore();
      // (s3rver orders keys by its directory walk, which differs from S3's byte order when a key
      // sorts between "x" and "x/…" — "a-c", "a b"; the filesystem-specific test covers those.)
      const keys = ["pg/a/b", "pg/a/c/d", "pg/a0", "pg/é", "pg/z", "pg/Z", "pg/a/ca", "pg/b/1", "pg/b/10", "pg/b/2"];
      for (let i = 0; i < 13; i++) keys.push(`pg/n/${String(i).padStart(3, "0")}`);
      for (const k of [...keys].reverse()) await s.put(k, k);
      await s.put("pg-other/x", "outside");
      await s.put("pgx", "outside");
      const expected = [...keys].sort(compareKeys);
      const { keys: listed, pages } = await listAll(s, "pg/", 7);
      expect(listed).toEqual(expected);
      expect(pages).toBe(Math.ceil(expected.length / 7));
      // strictly after, from any key (existing or not), and prefixes that end mid-segment
      expect((await s.list("pg/", { after: "pg/a/b", limit: 3 })).keys).toEqual(expected.slice(expected.indexOf("pg/a/b") + 1).slice(0, 3));
      expect((await s.list("pg/", { after: "pg/b/", limit: 1000 })).keys).toEqual(expected.filter((k) => compareKeys(k, "pg/b/") > 0));
      expect((await s.list("pg/b/1", { limit: 10 })).keys).toEqual(["pg/b/1", "pg/b/10"]);
      expect((await s.list("pg/a", { limit: 100 })).keys).toEqual(expected.filter((k) => k.startsWith("pg/a")));
      expect(await s.list("pg/nothing/", { limit: 5 })).toEqual({ keys: [] });
      const exact = await s.list("pg/n/", { limit: 13 });
      expect(exact.keys.length).toBe(13);
      if (exact.next !== undefined) expect((await s.list("pg/n/", { limit: 13, after: exact.next })).keys).toEqual([]);
    });

    it("deletes batches, tolerating missing keys", async () => {
      const s = getStore();
      await s.put("del/a", "1");
      await s.put("del/sub/b", "2");
      await s.put("del/keep", "3");
      await s.deleteMany(["del/a", "del/sub/b", "del/never-existed", "del/sub/nope"]);
      await s.deleteMany([]);
      expect(await s.get("del/a")).toBeNull();
      expect(await s.get("del/sub/b")).toBeNull();
      expect((await s.list("del/", { limit: 10 })).keys).toEqual(["del/keep"]);
      await s.put("del/sub/c", "again"); // a pruned directory comes back on write
      expect(text(await s.get("del/sub/c"))).toBe("again");
    });

    it("rejects keys that are not relative paths, changing nothing", async () => {
      const s = getStore();
      for (const bad of ["", "/abs", "a//b", "a/../b", "../x", "a/", "a\\b"]) {
        await expect(s.put(bad, "x")).rejects.toThrow(InvalidBlobKeyError);
      }
      await expect(s.deleteMany(["ok/key", "../escape"])).rejects.toThrow(InvalidBlobKeyError);
      await expect(s.list("x/", { limit: 0 })).rejects.toThrow(RangeError);
    });

    it("purges a prefix page by page without touching a neighbour sharing its name prefix", async () => {
      const s = getStore();
      for (let i = 0; i < 12; i++) await s.put(`team-a/obj/${i}`, "x");
      await s.put("team-a/top", "x");
      await s.put("team-ab/keep", "neighbour");
      await s.put("team-a-b/keep", "neighbour");
      await s.put("team-a.txt", "neighbour");
      const progress: [string, number][] = [];
      const r = await purgePrefix(s, "team-a/", { pageSize: 5, onProgress: (c, n) => void progress.push([c, n]) });
      expect(r).toMatchObject({ deleted: 13, pages: 3 });
      expect(progress.map((p) => p[1])).toEqual([5, 10, 13]);
      expect((await s.list("team-a/", { limit: 100 })).keys).toEqual([]);
      expect(text(await s.get("team-ab/keep"))).toBe("neighbour");
      expect(text(await s.get("team-a-b/keep"))).toBe("neighbour");
      expect(text(await s.get("team-a.txt"))).toBe("neighbour");
      await expect(purgePrefix(s, "team-a", {})).rejects.toThrow(/ending with '\/'/);
      await expect(purgePrefix(s, "", {})).rejects.toThrow(/ending with '\/'/);
      await expect(purgePrefix(s, "team-a/", { after: "team-ab/keep" })).rejects.toThrow(/not under prefix/);
    });

    it("resumes a purge that crashed after page 2 from the saved cursor and finishes it", async () => {
      const s = getStore();
      const keys = Array.from({ length: 23 }, (_, i) => `team-c/blobs/${String(i).padStart(2, "0")}`);
      for (const k of keys) await s.put(k, k);
      await s.put("team-cd/keep", "neighbour");
      let saved: { cursor: string; deleted: number } | undefined;
      let pages = 0;
      await expect(
        purgePrefix(s, "team-c/", {
          pageSize: 5,
          onProgress: (cursor, deleted) => {
            saved = { cursor, deleted }; // what the purger persists in its row
            if (++pages === 2) throw new Error("worker killed");
          },
        }),
      ).rejects.toThrow("worker killed");
      expect(saved).toEqual({ cursor: keys[9], deleted: 10 });
      expect((await listAll(s, "team-c/", 100)).keys).toEqual(keys.slice(10));
      const r = await purgePrefix(s, "team-c/", { pageSize: 5, after: saved!.cursor, deletedSoFar: saved!.deleted });
      expect(r.deleted).toBe(23);
      expect((await s.list("team-c/", { limit: 10 })).keys).toEqual([]);
      expect(text(await s.get("team-cd/keep"))).toBe("neighbour");
    });
  });
}
