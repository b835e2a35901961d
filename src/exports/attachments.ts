// The export node's storage: one verified copy of each attached blob, under
// <role dir>/attachments/<attachment id>.blob with its <id>.json written last, so an attachment
// exists exactly when its .json does. A blob is streamed from the blob store into tmp/ (never
// held whole in memory), counted and hashed as it arrives, cut off as soon as it is longer than
// announced or the download outlives its deadline, fsynced, checked against its sha256, then
// renamed into place; any failure removes the partial file, and a crash leaves only tmp/ files,
// which open() removes. A blob of at most SMALL_BLOB_BYTES is collected in memory instead and
// written with one call (the stream plumbing cost more than the copy; memory stays bounded by
// in-flight attaches × SMALL_BLOB_BYTES). The .json is fsynced too, and one directory fsync
// covers the renames of every attach that reached it (DirSync). Nothing here knows the
// database: Groundskeeper names the blob, its digest and the attachment id.
import crypto from "node:crypto";
import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BlobStoreUnavailableError, type BlobStore } from "../adapters/blobs/types.ts";
import { mapSettled } from "../lib/map-limit.ts";
import { syncDir } from "../lib/sync-dir.ts";

export const ATTACHMENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Attachment {
  attachment_id: string;
  blob_key: string;
  sha256: string;
  length: number;
  attached_at: string;
}

const DEADLINE = new Error("download deadline");

/** Blobs up to this size are collected in memory and written at once (see the header). */
export const SMALL_BLOB_BYTES = 256 * 1024;

type AttachStatus = 404 | 409 | 413 | 422 | 503 | 504 | 507;

export class AttachError extends Error {
  override name = "AttachError";
  readonly status: AttachStatus;
  constructor(status: AttachStatus, message: string) {
    super(message);
    this.status = status;
  }
}

export interface AttachmentStoreOptions {
  /** Largest blob attached (GK_EXPORTS_MAX_BLOB_BYTES). */
  maxBytes: number;
  /** Deadline of one blob's download and verification (GK_EXPORTS_DOWNLOAD_TIMEOUT_MS). */
  downloadTimeoutMs: number;
}

export interface AttachmentPage {
  attachments: { attachment_id: string; attached_at: string }[];
  next_after: string | null;
}

type AttachRequest = { attachment_id: string; blob_key: string; sha256: string; length: number };
type AttachResult = { attachment: Attachment; created: boolean };

export class AttachmentStore {
  readonly #dir: string;
  readonly #tmp: string;
  readonly #blobs: BlobStore;
  readonly #opts: AttachmentStoreOptions;
  /** Attaches in flight by id: a second call for the same id waits for the first; a detach aborts it. */
  readonly #inFlight = new Map<string, { done: Promise<AttachResult>; abort: AbortController }>();
  readonly #dirSync: DirSync;

  constructor(root: string, blobs: BlobStore, opts: AttachmentStoreOptions) {
    this.#dir = path.join(root, "attachments");
    this.#tmp = path.join(root, "tmp");
    this.#blobs = blobs;
    this.#opts = opts;
    this.#dirSync = new DirSync(this.#dir);
  }

  async open(): Promise<{ removedPartial: number }> {
    await fs.mkdir(this.#dir, { recursive: true });
    const partial = await fs.readdir(this.#tmp).catch(() => [] as string[]);
    await fs.rm(this.#tmp, { recursive: true, force: true });
    await fs.mkdir(this.#tmp, { recursive: true });
    // A .blob without its .json: renamed, but the crash came before the metadata.
    const orphans = (await fs.readdir(this.#dir)).filter((f) => f.endsWith(".blob"));
    let removed = partial.length;
    for (const f of orphans) {
      const id = f.slice(0, -".blob".length);
      if (!(await this.get(id))) {
        await fs.rm(path.join(this.#dir, f), { force: true });
        removed++;
      }
    }
    return { removedPartial: removed };
  }

  blobPath(id: string): string {
    return path.join(this.#dir, `${id}.blob`);
  }

  async get(id: string): Promise<Attachment | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.#dir, `${id}.json`), "utf8")) as Attachment;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  async count(): Promise<number> {
    return (await fs.readdir(this.#dir)).filter((f) => f.endsWith(".json")).length;
  }

  /**
   * A page of the attachments (those with their .json: never one being attached), in id order
   * after `after`, with when each was attached; `next_after` is the page's last id when more
   * follow, null on the last page. For Groundskeeper's sweep of attachments no record holds.
   */
  async list(after: string | null, limit: number): Promise<AttachmentPage> {
    const ids = (await fs.readdir(this.#dir))
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -".json".length))
      .filter((id) => ATTACHMENT_ID.test(id) && (after === null || id > after))
      .sort();
    const page = ids.slice(0, limit);
    const read = await mapSettled(page, 16, (id) => this.get(id));
    const attachments: AttachmentPage["attachments"] = [];
    for (const [i, r] of read.entries()) {
      if (r.status === "rejected") throw r.reason;
      // Detached since the directory was read: left out.
      if (r.value) attachments.push({ attachment_id: page[i]!, attached_at: r.value.attached_at });
    }
    return { attachments, next_after: ids.length > limit ? page.at(-1)! : null };
  }

  attach(req: AttachRequest): Promise<AttachResult> {
    const running = this.#inFlight.get(req.attachment_id);
    if (running) return running.done.then((r) => this.#same(r.attachment, req, false));
    const abort = new AbortController();
    const done = this.#attach(req, abort).finally(() => this.#inFlight.delete(req.attachment_id));
    this.#inFlight.set(req.attachment_id, { done, abort });
    return done;
  }

  #same(a: Attachment, req: AttachRequest, created: boolean): AttachResult {
    if (a.blob_key !== req.blob_key || a.sha256 !== req.sha256) {
      throw new AttachError(409, `attachment ${req.attachment_id} exists for another blob (${a.blob_key}, sha256 ${a.sha256})`);
    }
    return { attachment: a, created };
  }

  async #attach(req: AttachRequest, abort: AbortController): Promise<AttachResult> {
    const known = await this.get(req.attachment_id);
    if (known) return this.#same(known, req, false);
    if (req.length > this.#opts.maxBytes)
      throw new AttachError(413, `blob of ${req.length} bytes is over this node's limit of ${this.#opts.maxBytes}`);
    const small = req.length <= SMALL_BLOB_BYTES;
    // A small blob skips the free-space check: a full disk fails its write with ENOSPC (507 below).
    if (!small) {
      const fsStat = await fs.statfs(this.#tmp);
      const free = fsStat.bavail * fsStat.bsize;
      if (req.length > free) throw new AttachError(507, `blob of ${req.length} bytes does not fit in this node's ${free} free bytes`);
    }

    // One controller for both ends (AbortSignal.any per attach cost more than the attach of a small blob).
    const timer = setTimeout(() => abort.abort(DEADLINE), this.#opts.downloadTimeoutMs);
    const tmp = path.join(this.#tmp, `${req.attachment_id}.${process.pid}.${crypto.randomUUID()}`);
    const meta = `${tmp}.json`;
    const attachment: Attachment = { ...req, attached_at: "" };
    try {
      if (small) {
        const bytes = await this.#downloadSmall(req, abort.signal);
        attachment.attached_at = new Date().toISOString();
        // flush: both files are fsynced (in parallel) before either is renamed into place.
        await Promise.all([
          fs.writeFile(tmp, bytes, { flag: "wx", mode: 0o644, flush: true }),
          fs.writeFile(meta, JSON.stringify(attachment), { flag: "wx", flush: true }),
        ]);
      } else {
        await this.#download(req, tmp, abort.signal);
        attachment.attached_at = new Date().toISOString();
        await fs.writeFile(meta, JSON.stringify(attachment), { flag: "wx", flush: true });
      }
    } catch (e) {
      await Promise.all([fs.rm(tmp, { force: true }), fs.rm(meta, { force: true })]);
      if (abort.signal.reason === DEADLINE)
        throw new AttachError(504, `blob ${req.blob_key} was not downloaded within ${this.#opts.downloadTimeoutMs} ms`);
      if (abort.signal.aborted) throw new AttachError(409, `attachment ${req.attachment_id} was detached while it was being attached`);
      if (e instanceof BlobStoreUnavailableError) throw new AttachError(503, e.message);
      if ((e as NodeJS.ErrnoException).code === "ENOSPC")
        throw new AttachError(507, `blob of ${req.length} bytes does not fit in this node's free space`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    await fs.rename(tmp, this.blobPath(req.attachment_id));
    await fs.rename(meta, path.join(this.#dir, `${req.attachment_id}.json`));
    await this.#dirSync.sync();
    return { attachment, created: true };
  }

  /**
   * A small blob read whole into memory, cut off as soon as it is longer than announced (so at
   * most SMALL_BLOB_BYTES + one chunk is held), checked against its length and sha256.
   */
  async #downloadSmall(req: AttachRequest, signal: AbortSignal): Promise<Buffer> {
    const src = await this.#blobs.getStream(req.blob_key, { signal });
    if (!src) throw new AttachError(404, `blob ${req.blob_key} is not in the blob store`);
    if (src.length !== undefined && src.length !== req.length) {
      src.body.destroy();
      throw new AttachError(422, `blob ${req.blob_key} has ${src.length} bytes, expected ${req.length}`);
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of src.body as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > req.length) {
        src.body.destroy();
        throw new AttachError(422, `blob ${req.blob_key} has more than the expected ${req.length} bytes`);
      }
      chunks.push(chunk);
    }
    if (n !== req.length) throw new AttachError(422, `blob ${req.blob_key} has ${n} bytes, expected ${req.length}`);
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
    const sha = crypto.createHash("sha256").update(bytes).digest("hex");
    if (sha !== req.sha256) throw new AttachError(422, `blob ${req.blob_key} has sha256 ${sha}, expected ${req.sha256}`);
    return bytes;
  }

  /** Streams the blob into `tmp`, counting and hashing; throws (leaving `tmp` to the caller) unless it is exactly the announced blob. */
  async #download(req: AttachRequest, tmp: string, signal: AbortSignal): Promise<void> {
    const src = await this.#blobs.getStream(req.blob_key, { signal });
    if (!src) throw new AttachError(404, `blob ${req.blob_key} is not in the blob store`);
    if (src.length !== undefined && src.length !== req.length) {
      src.body.destroy();
      throw new AttachError(422, `blob ${req.blob_key} has ${src.length} bytes, expected ${req.length}`);
    }
    const hash = crypto.createHash("sha256");
    let n = 0;
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        n += chunk.length;
        // Cut off at once: a blob longer than announced is never written past its length.
        if (n > req.length) return cb(new AttachError(422, `blob ${req.blob_key} has more than the expected ${req.length} bytes`));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // flush: the file is fsynced before its stream closes, so what is renamed into place is on disk.
    await pipeline(src.body, check, createWriteStream(tmp, { flags: "wx", mode: 0o644, flush: true }), { signal });
    if (n !== req.length) throw new AttachError(422, `blob ${req.blob_key} has ${n} bytes, expected ${req.length}`);
    const sha = hash.digest("hex");
    if (sha !== req.sha256) throw new AttachError(422, `blob ${req.blob_key} has sha256 ${sha}, expected ${req.sha256}`);
  }

  /** Removes an attachment (aborting an attach of it in flight); one that does not exist is not an error. */
  async detach(id: string): Promise<boolean> {
    const running = this.#inFlight.get(id);
    if (running) {
      running.abort.abort();
      await running.done.catch(() => {});
    }
    const existed = (await this.get(id)) !== null;
    await fs.rm(path.join(this.#dir, `${id}.json`), { force: true });
    await fs.rm(this.blobPath(id), { force: true });
    return existed;
  }
}

/**
 * fsync of one directory shared by concurrent callers: a call resolves after an fsync that began
 * after the call, so it covers every rename the caller made before calling; calls that arrive
 * while one runs share the next one.
 */
class DirSync {
  readonly #dir: string;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  constructor(dir: string) {
    this.#dir = dir;
  }
  sync(): Promise<void> {
    if (!this.#running) {
      this.#running = syncDir(this.#dir).finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    this.#next ??= this.#running
      .catch(() => {})
      .then(() => {
        this.#next = null;
        return this.sync();
      });
    return this.#next;
  }
}
