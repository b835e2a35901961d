// Benchmark: an export node's attach, streamed (src/exports/attachments.ts: the blob store's
// stream into tmp/, counted and hashed as it arrives, fsynced, renamed) against reading the blob
// whole as the previous release did (BlobStore.get, hash, writeFile, rename; no fsync), side by
// side in one run on the filesystem blob store, in this process:
//   small  N blobs of 4 KiB, 8 at a time (what a launch of many images costs per attach)
//   large  blobs of 256 MiB one at a time: time, and the process's RSS growth (sampled every 5 ms)
//   node bench/exports-node.ts            BENCH_SCALE scales N (default 2,000) and the large count (3)
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FsBlobStore } from "../src/adapters/blobs/fs.ts";
import { AttachmentStore } from "../src/exports/attachments.ts";
import { mapLimit } from "../src/lib/map-limit.ts";
import { scaled } from "./lib/scale.ts";

const N = scaled(2000, 50);
const LARGE = scaled(3, 1);
const MiB = 1024 * 1024;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bench-exports-node-"));
const blobs = new FsBlobStore(path.join(root, "blobs"));

type Req = { attachment_id: string; blob_key: string; sha256: string; length: number };

/** The previous release's attach: the whole blob in memory. */
async function wholeRead(dir: string, r: Req): Promise<void> {
  const bytes = await blobs.get(r.blob_key);
  if (!bytes || bytes.length !== r.length) throw new Error("length");
  if (crypto.createHash("sha256").update(bytes).digest("hex") !== r.sha256) throw new Error("digest");
  const tmp = path.join(dir, "tmp", `${r.attachment_id}.${crypto.randomUUID()}`);
  await fsp.writeFile(tmp, bytes, { flag: "wx" });
  await fsp.rename(tmp, path.join(dir, "attachments", `${r.attachment_id}.blob`));
  await fsp.writeFile(`${tmp}.json`, JSON.stringify({ ...r, attached_at: new Date().toISOString() }), { flag: "wx" });
  await fsp.rename(`${tmp}.json`, path.join(dir, "attachments", `${r.attachment_id}.json`));
}

/**
 * Large blobs written a MiB at a time straight into the filesystem store's layout
 * (<root>/objects/<key>, src/adapters/blobs/fs.ts), so this process never holds one whole and
 * its RSS measures only the attach.
 */
async function putLargeBlobs(count: number, size: number): Promise<Req[]> {
  const out: Req[] = [];
  const chunk = crypto.randomBytes(MiB);
  for (let i = 0; i < count; i++) {
    const key = `teams/bench/images/${crypto.randomUUID()}.bin`;
    const file = path.join(blobs.root, "objects", ...key.split("/"));
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const h = crypto.createHash("sha256");
    const fh = await fsp.open(file, "w");
    for (let n = 0; n < size; n += MiB) {
      chunk[0] = (chunk[0]! + 1) % 256;
      h.update(chunk);
      await fh.write(chunk);
    }
    await fh.close();
    out.push({ attachment_id: crypto.randomUUID(), blob_key: key, sha256: h.digest("hex"), length: size });
  }
  return out;
}

async function putBlobs(count: number, size: number): Promise<Req[]> {
  const out: Req[] = [];
  for (let i = 0; i < count; i++) {
    const parts: Buffer[] = [];
    for (let n = 0; n < size; n += MiB) parts.push(crypto.randomBytes(Math.min(MiB, size - n)));
    const b = Buffer.concat(parts);
    const key = `teams/bench/images/${crypto.randomUUID()}.bin`;
    await blobs.put(key, b);
    out.push({
      attachment_id: crypto.randomUUID(),
      blob_key: key,
      sha256: crypto.createHash("sha256").update(b).digest("hex"),
      length: size,
    });
  }
  return out;
}

async function variant(name: string, reqs: Req[], parallel: number) {
  const dir = path.join(root, `${name}-${crypto.randomUUID()}`);
  await fsp.mkdir(path.join(dir, "attachments"), { recursive: true });
  await fsp.mkdir(path.join(dir, "tmp"), { recursive: true });
  const store = new AttachmentStore(dir, blobs, { maxBytes: 2 ** 40, downloadTimeoutMs: 600_000 });
  await store.open();
  const attach = name === "whole" ? (r: Req) => wholeRead(dir, r) : async (r: Req) => void (await store.attach(r));
  const rssBefore = process.memoryUsage.rss();
  let top = rssBefore;
  const sampler = setInterval(() => {
    top = Math.max(top, process.memoryUsage.rss());
  }, 5);
  const t = performance.now();
  await mapLimit(reqs, parallel, attach);
  const ms = performance.now() - t;
  clearInterval(sampler);
  const growth = top - rssBefore;
  await fsp.rm(dir, { recursive: true, force: true });
  return { ms, growth };
}

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
try {
  console.log(
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  // Large first: the whole reads' memory, once freed, stays with the process and hides growth.
  const large = await putLargeBlobs(LARGE, 256 * MiB);
  const ls = await variant("stream", large, 1);
  const lw = await variant("whole", large, 1);
  console.log(
    `large: ${LARGE} × 256 MiB, one at a time: whole read ${fmt(lw.ms)} (RSS +${(lw.growth / MiB).toFixed(0)} MiB), ` +
      `streamed ${fmt(ls.ms)} (RSS +${(ls.growth / MiB).toFixed(0)} MiB) → ${(ls.ms / lw.ms).toFixed(2)}× the time`,
  );
  const small = await putBlobs(N, 4096);
  // Alternating, three times each, the best of each: neither side always runs on a warmer cache.
  const times: Record<string, number[]> = { whole: [], stream: [] };
  for (let i = 0; i < 3; i++)
    for (const v of i % 2 ? ["stream", "whole"] : ["whole", "stream"]) times[v]!.push((await variant(v, small, 8)).ms);
  const whole = Math.min(...times.whole!);
  const stream = Math.min(...times.stream!);
  console.log(
    `small: ${N} × 4 KiB, 8 at a time: whole read ${fmt(whole)}, streamed ${fmt(stream)} → ${(stream / whole).toFixed(2)}× (best of 3 each)`,
  );
  console.log(
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
