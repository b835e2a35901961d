// A filesystem BlobStore for the TUF tests until the adapters branch's store is merged:
// put = write to a temp file + rename (atomic), like the real one.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { BlobStore, ListPage } from "../../../src/adapters/blobs/types.ts";

export class TestFsBlobStore implements BlobStore {
  readonly kind = "fs-test";
  readonly root: string;
  /** When set, every call fails with this error (the store is "down"). */
  down: Error | null = null;
  constructor(root: string) {
    this.root = root;
    fs.mkdirSync(root, { recursive: true });
  }
  #file(key: string) {
    return path.join(this.root, ...key.split("/"));
  }
  #check() {
    if (this.down) throw this.down;
  }
  async put(key: string, body: Uint8Array | string): Promise<void> {
    this.#check();
    const file = this.#file(key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${crypto.randomBytes(6).toString("hex")}.tmp`;
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, file);
  }
  async get(key: string): Promise<Uint8Array | null> {
    this.#check();
    try {
      return fs.readFileSync(this.#file(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }
  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage> {
    this.#check();
    const keys: string[] = [];
    const walk = (dir: string, rel: string) => {
      if (!fs.existsSync(dir)) return;
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const k = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(path.join(dir, e.name), k);
        else if (!e.name.endsWith(".tmp")) keys.push(k);
      }
    };
    walk(this.root, "");
    const sel = keys.filter((k) => k.startsWith(prefix) && (!opts.after || k > opts.after)).sort();
    const page = sel.slice(0, opts.limit);
    return sel.length > opts.limit ? { keys: page, next: page[page.length - 1] } : { keys: page };
  }
  async deleteMany(keys: string[]): Promise<void> {
    this.#check();
    for (const k of keys) fs.rmSync(this.#file(k), { force: true });
  }
}
