// The volumes on one agent's disk. Three directories: a volume is built under init/, made live by
// one atomic rename into live/, and destroyed by one atomic rename into dead/ before it is removed.
// So live/ only ever holds complete volumes, whatever crashes when; on start, whatever is left in
// init/ (half built) and dead/ (half removed) is removed. Copy-on-write children are copies of the
// parent made with reflinks where the filesystem has them (COPYFILE_FICLONE falls back to a copy).
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

export const HANDLE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class VolumeError extends Error {
  readonly code: "parent_missing" | "bad_handle";
  constructor(code: "parent_missing" | "bad_handle", message: string) {
    super(message);
    this.code = code;
  }
}

export interface Listing {
  live: string[];
  building: string[];
}

export class VolumeStore {
  readonly init: string;
  readonly live: string;
  readonly dead: string;
  /** One operation per handle at a time (create and destroy of the same handle never interleave). */
  readonly #busy = new Map<string, Promise<unknown>>();
  #sweeping?: Promise<number>;

  constructor(root: string) {
    this.init = path.join(root, "init");
    this.live = path.join(root, "live");
    this.dead = path.join(root, "dead");
  }

  /** Creates the directories and removes what a crash left in init/ and dead/. */
  async open(): Promise<{ init: number; dead: number }> {
    for (const d of [this.init, this.live, this.dead]) fs.mkdirSync(d, { recursive: true });
    const init = await this.#removeAll(this.init);
    return { init, dead: await this.sweepDead() };
  }

  async list(): Promise<Listing> {
    const [live, building] = await Promise.all([fsp.readdir(this.live), fsp.readdir(this.init)]);
    return { live: live.filter((h) => HANDLE.test(h)), building: building.filter((h) => HANDLE.test(h)) };
  }

  async has(handle: string): Promise<"live" | "building" | null> {
    if (fs.existsSync(path.join(this.live, handle))) return "live";
    if (fs.existsSync(path.join(this.init, handle))) return "building";
    return null;
  }

  /** Empty, or a copy-on-write child of a live parent. Creating an existing volume is a no-op. */
  create(handle: string, parent?: string): Promise<{ created: boolean }> {
    check(handle);
    if (parent !== undefined) check(parent);
    return this.#exclusive(handle, async () => {
      const target = path.join(this.live, handle);
      if (fs.existsSync(target)) return { created: false };
      const tmp = path.join(this.init, handle);
      await fsp.rm(tmp, { recursive: true, force: true });
      if (parent !== undefined) {
        const source = path.join(this.live, parent);
        if (!fs.existsSync(source)) throw new VolumeError("parent_missing", `parent volume ${parent} is not live on this agent`);
        await fsp.cp(source, tmp, { recursive: true, mode: fs.constants.COPYFILE_FICLONE, preserveTimestamps: true });
      } else {
        await fsp.mkdir(tmp);
      }
      await fsp.rename(tmp, target);
      return { created: true };
    });
  }

  /**
   * Takes the volume out of live/ by one rename into dead/ (a unique name: an older dead copy of
   * the same handle may still be there), then removes it in the background. A volume that is not
   * there is already destroyed. A refused rename (read-only or immutable directory, full disk)
   * throws, and the volume stays live and complete.
   */
  destroy(handle: string): Promise<{ existed: boolean }> {
    check(handle);
    return this.#exclusive(handle, async () => {
      try {
        await fsp.rename(path.join(this.live, handle), path.join(this.dead, `${handle}.${crypto.randomBytes(4).toString("hex")}`));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return { existed: false };
        throw e;
      }
      void this.sweepDead();
      return { existed: true };
    });
  }

  async deadCount(): Promise<number> {
    return (await fsp.readdir(this.dead)).length;
  }

  /**
   * Removes everything under dead/, one sweep at a time, going round again while destroys add
   * entries; what cannot be removed (a busy disk) waits for the next sweep.
   */
  sweepDead(): Promise<number> {
    this.#sweeping ??= (async () => {
      let total = 0;
      for (;;) {
        const removed = await this.#removeAll(this.dead);
        total += removed;
        if (removed === 0 || (await fsp.readdir(this.dead)).length === 0) return total;
      }
    })().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #removeAll(dir: string): Promise<number> {
    let removed = 0;
    for (const name of await fsp.readdir(dir)) {
      await fsp.rm(path.join(dir, name), { recursive: true, force: true, maxRetries: 2 }).then(
        () => removed++,
        () => {},
      );
    }
    return removed;
  }

  #exclusive<T>(handle: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#busy.get(handle) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.#busy.set(handle, settled);
    void settled.then(() => {
      if (this.#busy.get(handle) === settled) this.#busy.delete(handle);
    });
    return next;
  }
}

function check(handle: string): void {
  if (typeof handle !== "string" || !HANDLE.test(handle))
    throw new VolumeError("bad_handle", `not a volume handle: ${JSON.stringify(handle)}`);
}
