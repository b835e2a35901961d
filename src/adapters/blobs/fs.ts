// Filesystem blob store: <root>/objects/<key> with keys as relative paths. Writes go to
// <root>/tmp, are fsynced, then renamed into place, so a reader sees the old object or the new
// one, never a partial one. Listing walks the tree in S3's order (UTF-8 byte order of full keys),
// one directory level at a time, and stops as soon as the page is full.
import crypto from "node:crypto";
import type { Dirent } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { assertValidKey, assertValidLimit, assertValidPrefix, compareKeys } from "./keys.ts";
import type { BlobStore, BlobStream, ListPage } from "./types.ts";
import { syncDir } from "../../lib/sync-dir.ts";

export class FsBlobStore implements BlobStore {
  readonly kind = "fs";
  readonly root: string;
  readonly #objects: string;
  readonly #tmp: string;
  #ready?: Promise<void>;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.#objects = path.join(this.root, "objects");
    this.#tmp = path.join(this.root, "tmp");
  }

  async put(key: string, body: Uint8Array | string, _opts?: { contentType?: string }): Promise<void> {
    assertValidKey(key);
    await this.#ensureDirs();
    const target = this.#pathOf(key);
    const tmp = path.join(this.#tmp, `${crypto.randomUUID()}.part`);
    const fh = await fsp.open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      // A concurrent deleteMany may prune the (momentarily empty) parent between mkdir and rename.
      for (let attempt = 0; ; attempt++) {
        await fsp.mkdir(path.dirname(target), { recursive: true });
        try {
          await fsp.rename(tmp, target);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === "ENOENT" && attempt < 5) continue;
          if (code === "EISDIR" || code === "ENOTDIR" || code === "ENOTEMPTY" || code === "EEXIST")
            throw new Error(`blob key ${JSON.stringify(key)} collides with another key used as a directory (filesystem store)`, {
              cause: e,
            });
          throw e;
        }
      }
      await syncDir(path.dirname(target));
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertValidKey(key);
    try {
      return new Uint8Array(await fsp.readFile(this.#pathOf(key)));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") return null;
      throw e;
    }
  }

  async getStream(key: string, opts: { signal?: AbortSignal } = {}): Promise<BlobStream | null> {
    assertValidKey(key);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.#pathOf(key), "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") return null;
      throw e;
    }
    const st = await fh.stat().catch(async (e) => {
      await fh.close();
      throw e;
    });
    if (!st.isFile()) {
      await fh.close();
      return null;
    }
    // The open handle keeps reading the object even if a put replaces it meanwhile.
    return { body: fh.createReadStream({ ...(opts.signal ? { signal: opts.signal } : {}) }), length: st.size };
  }

  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage> {
    assertValidPrefix(prefix);
    assertValidLimit(opts.limit);
    const cut = prefix.lastIndexOf("/") + 1;
    const dirPart = prefix.slice(0, cut); // "" or "a/b/"
    const namePrefix = prefix.slice(cut);
    const dir = dirPart ? path.join(this.#objects, ...dirPart.slice(0, -1).split("/")) : this.#objects;
    const keys: string[] = [];
    let more = false;
    for await (const key of walk(dir, dirPart, namePrefix, opts.after)) {
      if (keys.length === opts.limit) {
        more = true;
        break;
      }
      keys.push(key);
    }
    return more ? { keys, next: keys[keys.length - 1]! } : { keys };
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (const k of keys) assertValidKey(k);
    const parents = new Set<string>();
    await eachLimited(keys, 16, async (key) => {
      const p = this.#pathOf(key);
      try {
        await fsp.unlink(p);
        parents.add(path.dirname(p));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Missing, or a directory (not an object): nothing to delete.
        if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EISDIR" && code !== "EPERM") throw e;
      }
    });
    // Prune directories the deletions emptied, deepest first, up to the objects root.
    const dirs = [...parents].sort((a, b) => b.length - a.length);
    for (let dir of dirs) {
      while (dir.startsWith(this.#objects + path.sep)) {
        try {
          await fsp.rmdir(dir);
        } catch {
          break; // not empty (or already gone): its ancestors are not empty either
        }
        dir = path.dirname(dir);
      }
    }
  }

  /**
   * Removes directories under `prefix` (a whole-segment prefix ending in '/') that hold no object,
   * deepest first, then the prefix's own directory and its ancestors while they are empty. A
   * purge killed between deleteMany's unlinks and its pruning leaves such directories; the purge
   * calls this when it finishes.
   */
  async pruneEmpty(prefix: string): Promise<void> {
    assertValidPrefix(prefix);
    if (!prefix.endsWith("/") || prefix === "/") return;
    let dir = path.join(this.#objects, ...prefix.slice(0, -1).split("/"));
    await pruneTree(dir);
    while (dir.startsWith(this.#objects + path.sep)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break; // not empty, or gone
      }
      dir = path.dirname(dir);
    }
  }

  /** Temp files of writers that crashed mid-put (never renamed into place); an hour is plenty. */
  async #removeStaleTempFiles(maxAgeMs = 3600_000): Promise<void> {
    for (const name of await fsp.readdir(this.#tmp)) {
      const p = path.join(this.#tmp, name);
      const st = await fsp.stat(p).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > maxAgeMs) await fsp.rm(p, { force: true });
    }
  }

  #pathOf(key: string): string {
    return path.join(this.#objects, ...key.split("/"));
  }

  #ensureDirs(): Promise<void> {
    this.#ready ??= (async () => {
      await fsp.mkdir(this.#objects, { recursive: true });
      await fsp.mkdir(this.#tmp, { recursive: true });
      await this.#removeStaleTempFiles();
    })().catch((e) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }
}

/**
 * Keys under `dir` (whose key prefix is `base`) in byte order, strictly after `after`.
 * A directory sorts as "<name>/", which puts its subtree exactly where its keys belong
 * ("a-c" < "a/b" because '-' < '/'); subtrees entirely ≤ `after` are skipped unread.
 */
async function* walk(dir: string, base: string, namePrefix: string, after: string | undefined): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return;
    throw e;
  }
  const items = entries
    .filter((e) => e.name.startsWith(namePrefix) && (e.isFile() || e.isDirectory()))
    .map((e) => ({ name: e.name, dir: e.isDirectory(), sortKey: base + e.name + (e.isDirectory() ? "/" : "") }))
    .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  for (const it of items) {
    if (it.dir) {
      if (after !== undefined && compareKeys(after, it.sortKey) >= 0 && !after.startsWith(it.sortKey)) continue;
      yield* walk(path.join(dir, it.name), it.sortKey, "", after);
    } else if (after === undefined || compareKeys(it.sortKey, after) > 0) {
      yield it.sortKey;
    }
  }
}

/** Removes the empty directories below `dir` (not `dir` itself); true when `dir` is left empty. */
async function pruneTree(dir: string): Promise<boolean> {
  let entries: Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  let left = entries.length;
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const sub = path.join(dir, e.name);
    if (await pruneTree(sub)) {
      try {
        await fsp.rmdir(sub);
        left--;
      } catch {
        // something appeared meanwhile: keep it
      }
    }
  }
  return left === 0;
}

async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  });
  await Promise.all(workers);
}
