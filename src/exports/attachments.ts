// The export node's storage: one verified copy of each attached blob, under
// <role dir>/attachments/<attachment id>.blob with its <id>.json written last, so an attachment
// exists exactly when its .json does. A blob is fetched into tmp/, checked against its length and
// sha256, then renamed into place; a crash leaves only tmp/ files, which open() removes. Nothing
// here knows the database: Groundskeeper names the blob, its digest and the attachment id.
import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { BlobStore } from "../adapters/blobs/types.ts";

export const ATTACHMENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Attachment {
  attachment_id: string;
  blob_key: string;
  sha256: string;
  length: number;
  attached_at: string;
}

export class AttachError extends Error {
  override name = "AttachError";
  readonly status: 404 | 409 | 413 | 422;
  constructor(status: 404 | 409 | 413 | 422, message: string) {
    super(message);
    this.status = status;
  }
}

export class AttachmentStore {
  readonly #dir: string;
  readonly #tmp: string;
  readonly #blobs: BlobStore;
  readonly #maxBytes: number;
  /** Attaches in flight by id: a second call for the same id waits for the first. */
  readonly #inFlight = new Map<string, Promise<{ attachment: Attachment; created: boolean }>>();

  constructor(root: string, blobs: BlobStore, opts: { maxBytes: number }) {
    this.#dir = path.join(root, "attachments");
    this.#tmp = path.join(root, "tmp");
    this.#blobs = blobs;
    this.#maxBytes = opts.maxBytes;
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

  attach(req: {
    attachment_id: string;
    blob_key: string;
    sha256: string;
    length: number;
  }): Promise<{ attachment: Attachment; created: boolean }> {
    const running = this.#inFlight.get(req.attachment_id);
    if (running) return running.then((r) => this.#same(r.attachment, req, false));
    const p = this.#attach(req).finally(() => this.#inFlight.delete(req.attachment_id));
    this.#inFlight.set(req.attachment_id, p);
    return p;
  }

  #same(a: Attachment, req: { attachment_id: string; blob_key: string; sha256: string }, created: boolean) {
    if (a.blob_key !== req.blob_key || a.sha256 !== req.sha256) {
      throw new AttachError(409, `attachment ${req.attachment_id} exists for another blob (${a.blob_key}, sha256 ${a.sha256})`);
    }
    return { attachment: a, created };
  }

  async #attach(req: { attachment_id: string; blob_key: string; sha256: string; length: number }) {
    const known = await this.get(req.attachment_id);
    if (known) return this.#same(known, req, false);
    if (req.length > this.#maxBytes)
      throw new AttachError(413, `blob of ${req.length} bytes is over this node's limit of ${this.#maxBytes}`);
    const bytes = await this.#blobs.get(req.blob_key);
    if (!bytes) throw new AttachError(404, `blob ${req.blob_key} is not in the blob store`);
    if (bytes.length !== req.length) throw new AttachError(422, `blob ${req.blob_key} has ${bytes.length} bytes, expected ${req.length}`);
    const sha = crypto.createHash("sha256").update(bytes).digest("hex");
    if (sha !== req.sha256) throw new AttachError(422, `blob ${req.blob_key} has sha256 ${sha}, expected ${req.sha256}`);
    const tmp = path.join(this.#tmp, `${req.attachment_id}.${process.pid}.${crypto.randomUUID()}`);
    await fs.writeFile(tmp, bytes, { flag: "wx" });
    await fs.rename(tmp, this.blobPath(req.attachment_id));
    const attachment: Attachment = { ...req, attached_at: new Date().toISOString() };
    const meta = `${tmp}.json`;
    await fs.writeFile(meta, JSON.stringify(attachment), { flag: "wx" });
    await fs.rename(meta, path.join(this.#dir, `${req.attachment_id}.json`));
    return { attachment, created: true };
  }

  /** Removes an attachment; one that does not exist is not an error. */
  async detach(id: string): Promise<boolean> {
    const existed = (await this.get(id)) !== null;
    await fs.rm(path.join(this.#dir, `${id}.json`), { force: true });
    await fs.rm(this.blobPath(id), { force: true });
    return existed;
  }
}
