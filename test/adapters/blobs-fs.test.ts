// The filesystem blob store: the shared contract plus filesystem specifics.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { compareKeys } from "../../src/adapters/blobs/keys.ts";
import { blobStoreContract } from "./blob-contract.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gk-blobs-fs-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const store = new FsBlobStore(root);

blobStoreContract("filesystem", () => store, { atomicOverwrite: true });

describe("filesystem blob store", () => {
  it("lists in S3's byte order even where a key sorts between a directory and its children", async () => {
    const keys = ["ord/a-c", "ord/a/b", "ord/a b", "ord/a0", "ord/a/c/d", "ord/a.x", "ord/\u{1F600}", "ord/\uFFFD", "ord/A"];
    for (const k of keys) await store.put(k, k);
    const expected = [...keys].sort(compareKeys);
    expect(expected.slice(0, 4)).toEqual(["ord/A", "ord/a b", "ord/a-c", "ord/a.x"]); // ' ' '-' '.' sort before '/'
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.list("ord/", after === undefined ? { limit: 2 } : { limit: 2, after });
      seen.push(...page.keys);
      if (!page.next) break;
      after = page.next;
    }
    expect(seen).toEqual(expected);
    // UTF-8 byte order: U+FFFD (ef bf bd) before U+1F600 (f0 9f 98 80), unlike UTF-16 order.
    expect(seen.indexOf("ord/\uFFFD")).toBeLessThan(seen.indexOf("ord/\u{1F600}"));
  });
  it("keeps objects inside its root and leaves no temp files or empty directories behind", async () => {
    await store.put("fsx/deep/er/obj", "x");
    expect(fs.readFileSync(path.join(root, "objects", "fsx", "deep", "er", "obj"), "utf8")).toBe("x");
    await store.deleteMany(["fsx/deep/er/obj"]);
    expect(fs.existsSync(path.join(root, "objects", "fsx"))).toBe(false);
    expect(fs.readdirSync(path.join(root, "tmp"))).toEqual([]);
  });

  it("removes temp files a crashed writer left behind, once they are old", async () => {
    const r = fs.mkdtempSync(path.join(os.tmpdir(), "gk-blobs-fs-tmp-"));
    try {
      fs.mkdirSync(path.join(r, "tmp"), { recursive: true });
      const stale = path.join(r, "tmp", "crashed.part");
      const fresh = path.join(r, "tmp", "in-flight.part");
      fs.writeFileSync(stale, "half an obj");
      fs.writeFileSync(fresh, "being written");
      const old = new Date(Date.now() - 2 * 3600_000);
      fs.utimesSync(stale, old, old);
      await new FsBlobStore(r).put("k", "v");
      expect(fs.existsSync(stale)).toBe(false);
      expect(fs.existsSync(fresh)).toBe(true);
    } finally {
      fs.rmSync(r, { recursive: true, force: true });
    }
  });

  it("refuses a key that collides with a directory, leaving both intact", async () => {
    await store.put("clash/a/b", "inner");
    await expect(store.put("clash/a", "outer")).rejects.toThrow(/collides/);
    expect(Buffer.from((await store.get("clash/a/b"))!).toString()).toBe("inner");
    expect(await store.get("clash/a")).toBeNull();
    expect(fs.readdirSync(path.join(root, "tmp"))).toEqual([]);
  });
});
