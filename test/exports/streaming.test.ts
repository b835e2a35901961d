// An export node streams blobs (real `groundskeeper agent --roles exports` processes, the real
// S3-protocol server and the filesystem store): a blob far larger than the node could cheaply
// hold in memory attaches with the node's peak RSS growing by a small fraction of it, and is
// served streamed with its length and byte ranges; a wrong digest or length leaves nothing in
// storage and nothing served; a node killed mid-download has no partial file after its restart
// (nothing served, the attach works again); a download that stalls past the node's deadline is
// refused with 504 and leaves nothing, a small blob's (collected in memory) too, and a small
// attachment detached leaves nothing either.
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeerClient } from "../../src/peers/client.ts";
import { expectPeer } from "../../src/peers/tls.ts";
import { createTestDb } from "../helpers/db.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { type S3Server, startS3Server } from "../helpers/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { blobStore, type NodeProcess, refusal, runNode, startNode } from "./helpers/nodes.ts";
import { type StallProxy, startStallProxy } from "./helpers/stall-proxy.ts";

const MiB = 1024 * 1024;
// Far over V8's soft limit of unreferenced external memory (64 MiB: the chunks a stream has
// passed on are freed by the next collection, which that limit triggers), so a streamed attach's
// peak stays near that limit while reading the blob whole needs at least the blob.
const BIG = 320 * MiB;

const db = await createTestDb();
let peers: Peers;
let s3: S3Server;
let proxy: StallProxy;
const nodes: Record<string, NodeProcess> = {};

const s3Env = (endpoint: string) => ({
  GK_BLOBS: "s3",
  GK_S3_ENDPOINT: endpoint,
  GK_S3_BUCKET: s3.bucket,
  GK_S3_MAX_ATTEMPTS: "1",
  AWS_ACCESS_KEY_ID: "S3RVER",
  AWS_SECRET_ACCESS_KEY: "S3RVER",
});

beforeAll(async () => {
  peers = await setupPeers(db, "streaming");
  s3 = await startS3Server();
  const u = new URL(s3.endpoint);
  proxy = await startStallProxy({ host: u.hostname, port: Number(u.port) });
  // One at a time: each enrolment runs the job queue.
  nodes.s3 = await startNode(peers, "s3", { env: s3Env(s3.endpoint) });
  nodes.fs = await startNode(peers, "fs");
  nodes.stalled = await startNode(peers, "stalled", { env: s3Env(proxy.url) });
}, 180_000);

afterAll(async () => {
  for (const n of Object.values(nodes)) await n.proc.stop("SIGKILL");
  await proxy?.close();
  await s3?.dispose();
  await peers?.close();
});

/** Random bytes, generated in 1 MiB pieces, and their sha256. */
function randomBlob(bytes: number): { bytes: Buffer; sha256: string } {
  const parts: Buffer[] = [];
  for (let n = 0; n < bytes; n += MiB) parts.push(crypto.randomBytes(Math.min(MiB, bytes - n)));
  const b = Buffer.concat(parts);
  return { bytes: b, sha256: crypto.createHash("sha256").update(b).digest("hex") };
}

async function put(store: "s3" | "fs", bytes: Buffer): Promise<string> {
  const key = `teams/${crypto.randomUUID()}/images/fw/${crypto.randomUUID()}.bin`;
  await (store === "s3" ? s3.store() : blobStore(peers).store).put(key, bytes);
  return key;
}

async function client(n: NodeProcess): Promise<PeerClient> {
  return new PeerClient(n.url, (await peers.identity.current())!, { profile: "worker", commonName: n.workerId, timeoutMs: 120_000 });
}

/** The node process's peak resident set so far (VmHWM), in bytes. */
function peakRss(n: NodeProcess): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${n.proc.child.pid}/status`, "utf8"));
  if (!m) throw new Error("no VmHWM in /proc/<pid>/status");
  return Number(m[1]) * 1024;
}

/** Streams what the node serves at `p` and hashes it, without holding it: status, headers, sha256, length. */
async function fetchHashed(n: NodeProcess, p: string, headers: Record<string, string> = {}) {
  const creds = (await peers.identity.current())!;
  return new Promise<{ status: number; headers: Record<string, unknown>; sha256: string; length: number; head: Buffer }>(
    (resolve, reject) => {
      const req = https.request(
        new URL(p, n.url),
        {
          key: creds.keyPem,
          cert: creds.certPem,
          ca: creds.caPem,
          checkServerIdentity: expectPeer("worker", n.workerId),
          headers,
          agent: false,
        },
        (res) => {
          const h = crypto.createHash("sha256");
          let length = 0;
          const head: Buffer[] = [];
          res.on("data", (c: Buffer) => {
            if (length < 4096) head.push(c);
            length += c.length;
            h.update(c);
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, sha256: h.digest("hex"), length, head: Buffer.concat(head) }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    },
  );
}

/** The node's files (of attachment `id` only, when given). */
/**
 * An attach of `blob` whose download the proxy stalls after `stallAt` bytes, on a node started
 * with GK_EXPORTS_DOWNLOAD_TIMEOUT_MS=1500: refused with 504, nothing left on the node, nothing
 * served. Returns the attachment id, the request's body and the open client, for what the test
 * does next.
 */
async function expectStalledAttachRefused(n: NodeProcess, blob: { bytes: Buffer; sha256: string }, stallAt: number) {
  const key = await put("s3", blob.bytes);
  const id = crypto.randomUUID();
  proxy.stallAfter(stallAt);
  const body = { attachment_id: id, blob_key: key, sha256: blob.sha256, length: blob.bytes.length };
  const c = await client(n);
  try {
    const r = await refusal(c.request("POST", "/v1/exports", body));
    expect(r.status).toBe(504);
    expect(r.message).toContain("not downloaded within 1500 ms");
  } finally {
    proxy.release();
  }
  expect(storage(n)).toEqual({ attachments: [], tmp: [] });
  expect((await fetchHashed(n, `/v1/exports/${id}/blob`)).status).toBe(404);
  return { id, body, c };
}

function storage(n: NodeProcess, id = ""): { attachments: string[]; tmp: string[] } {
  const dir = path.join(n.dataDir, "exports");
  const ls = (d: string) =>
    fs.existsSync(path.join(dir, d))
      ? fs
          .readdirSync(path.join(dir, d))
          .filter((f) => f.startsWith(id))
          .sort()
      : [];
  return { attachments: ls("attachments"), tmp: ls("tmp") };
}

describe("an export node streams blobs", () => {
  for (const store of ["s3", "fs"] as const) {
    it(`attaches a ${BIG / MiB} MiB blob from the ${store} store with its peak RSS growing by far less than the blob, and serves it streamed with ranges`, async () => {
      const n = nodes[store]!;
      const blob = randomBlob(BIG);
      const key = await put(store, blob.bytes);
      const id = crypto.randomUUID();
      const c = await client(n);
      // A first small attach loads the store's client code (the S3 SDK's middlewares load on first
      // use), so what is measured is what one blob costs.
      const warm = randomBlob(MiB);
      const warmId = crypto.randomUUID();
      const warmKey = await put(store, warm.bytes);
      await c.request("POST", "/v1/exports", { attachment_id: warmId, blob_key: warmKey, sha256: warm.sha256, length: MiB });
      await c.request("DELETE", `/v1/exports/${warmId}`);
      const before = peakRss(n);
      const out = await c.request<{ path: string }>(
        "POST",
        "/v1/exports",
        { attachment_id: id, blob_key: key, sha256: blob.sha256, length: BIG },
        120_000,
      );
      const growth = peakRss(n) - before;
      // The old path held the blob whole (and copies of it): growth of at least BIG.
      expect(growth, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB for a ${BIG / MiB} MiB blob`).toBeLessThan(BIG / 3);

      const whole = await fetchHashed(n, out.path);
      expect(whole).toMatchObject({ status: 200, sha256: blob.sha256, length: BIG });
      expect(whole.headers["content-length"]).toBe(String(BIG));
      expect(whole.headers["accept-ranges"]).toBe("bytes");
      const part = await fetchHashed(n, out.path, { Range: "bytes=1000-1999" });
      expect(part.status).toBe(206);
      expect(part.headers["content-range"]).toBe(`bytes 1000-1999/${BIG}`);
      expect(part.head.equals(blob.bytes.subarray(1000, 2000))).toBe(true);
      const tail = await fetchHashed(n, out.path, { Range: "bytes=-10" });
      expect(tail.head.equals(blob.bytes.subarray(BIG - 10))).toBe(true);
      expect((await fetchHashed(n, out.path, { Range: `bytes=${BIG}-` })).status).toBe(416);
      // Serving streams too.
      expect(peakRss(n) - before).toBeLessThan(BIG / 3);
      await c.request("DELETE", `/v1/exports/${id}`);
      c.close();
    });
  }

  it("a wrong digest or a wrong length (shorter or longer than the blob) leaves nothing in storage and nothing served", async () => {
    // 8 MiB is streamed; 4 KiB takes the small-blob path (read into memory, SMALL_BLOB_BYTES).
    for (const [store, size] of [
      ["s3", 8 * MiB],
      ["fs", 8 * MiB],
      ["s3", 4096],
      ["fs", 4096],
    ] as const) {
      const n = nodes[store]!;
      const blob = randomBlob(size);
      const key = await put(store, blob.bytes);
      const c = await client(n);
      const id = crypto.randomUUID();
      const base = { attachment_id: id, blob_key: key, sha256: blob.sha256, length: blob.bytes.length };
      const wrong = await refusal(c.request("POST", "/v1/exports", { ...base, sha256: "f".repeat(64) }));
      expect(wrong.status).toBe(422);
      expect(wrong.message).toContain(`has sha256 ${blob.sha256}, expected ${"f".repeat(64)}`);
      expect((await refusal(c.request("POST", "/v1/exports", { ...base, length: base.length - 1 }))).status).toBe(422);
      expect((await refusal(c.request("POST", "/v1/exports", { ...base, length: base.length + 1 }))).status).toBe(422);
      expect((await refusal(c.request("GET", `/v1/exports/${id}`))).status).toBe(404);
      expect((await fetchHashed(n, `/v1/exports/${id}/blob`)).status).toBe(404);
      expect(storage(n, id)).toEqual({ attachments: [], tmp: [] });
      c.close();
    }
  });

  it("a node SIGKILLed mid-download has no partial file after its restart: nothing served, and the attach works again", async () => {
    const blob = randomBlob(32 * MiB);
    const key = await put("s3", blob.bytes);
    const id = crypto.randomUUID();
    const body = { attachment_id: id, blob_key: key, sha256: blob.sha256, length: blob.bytes.length };
    proxy.stallAfter(4 * MiB);
    let n = nodes.stalled!;
    const c = await client(n);
    const attaching = c.request("POST", "/v1/exports", body, 120_000).catch((e: Error) => e);
    // Mid-download: a partial file in tmp/, nothing in attachments/.
    const tmpFile = await waitFor(async () => {
      const t = storage(n).tmp[0];
      return t && fs.statSync(path.join(n.dataDir, "exports", "tmp", t)).size >= MiB ? t : undefined;
    }, "a partial download in tmp/");
    expect(fs.statSync(path.join(n.dataDir, "exports", "tmp", tmpFile)).size).toBeLessThan(blob.bytes.length);
    expect(storage(n).attachments).toEqual([]);
    await n.proc.stop("SIGKILL");
    expect(await attaching).toBeInstanceOf(Error);
    c.close();
    proxy.release();

    n = nodes.stalled = await runNode(peers, n, { env: s3Env(proxy.url) });
    expect(storage(n)).toEqual({ attachments: [], tmp: [] });
    const again = await client(n);
    expect((await refusal(again.request("GET", `/v1/exports/${id}`))).status).toBe(404);
    expect((await fetchHashed(n, `/v1/exports/${id}/blob`)).status).toBe(404);
    await again.request("POST", "/v1/exports", body, 120_000);
    expect(await fetchHashed(n, `/v1/exports/${id}/blob`)).toMatchObject({ status: 200, sha256: blob.sha256 });
    await again.request("DELETE", `/v1/exports/${id}`);
    again.close();
  });

  it("a detach during the download aborts it: the attach answers 409 and nothing is left", async () => {
    const n = nodes.stalled!;
    const blob = randomBlob(16 * MiB);
    const key = await put("s3", blob.bytes);
    const id = crypto.randomUUID();
    proxy.stallAfter(2 * MiB);
    const c = await client(n);
    try {
      const attaching = refusal(
        c.request("POST", "/v1/exports", { attachment_id: id, blob_key: key, sha256: blob.sha256, length: blob.bytes.length }),
      );
      await waitFor(async () => storage(n, id).tmp.length > 0, "the download in tmp/");
      await c.request("DELETE", `/v1/exports/${id}`);
      const r = await attaching;
      expect(r.status).toBe(409);
      expect(r.message).toContain("was detached while it was being attached");
    } finally {
      proxy.release();
    }
    expect(storage(n, id)).toEqual({ attachments: [], tmp: [] });
    expect((await fetchHashed(n, `/v1/exports/${id}/blob`)).status).toBe(404);
    c.close();
  });

  it("a download stalled past GK_EXPORTS_DOWNLOAD_TIMEOUT_MS is refused with 504 and leaves nothing", async () => {
    await nodes.stalled!.proc.stop("SIGKILL");
    const n = (nodes.stalled = await runNode(peers, nodes.stalled!, {
      env: { ...s3Env(proxy.url), GK_EXPORTS_DOWNLOAD_TIMEOUT_MS: "1500" },
    }));
    (await expectStalledAttachRefused(n, randomBlob(16 * MiB), 2 * MiB)).c.close();
  });

  it("a small blob (collected in memory) stalled past the deadline is refused with 504 and leaves nothing; a small attachment detached is gone", async () => {
    // The node restarted by the test above: GK_EXPORTS_DOWNLOAD_TIMEOUT_MS=1500, behind the proxy.
    const n = nodes.stalled!;
    const blob = randomBlob(200 * 1024); // under SMALL_BLOB_BYTES: the in-memory path
    const { id, body, c } = await expectStalledAttachRefused(n, blob, 64 * 1024);

    // Attached whole, then detached: both files go, and nothing is served.
    await c.request("POST", "/v1/exports", body);
    expect(storage(n, id)).toEqual({ attachments: [`${id}.blob`, `${id}.json`], tmp: [] });
    expect(await fetchHashed(n, `/v1/exports/${id}/blob`)).toMatchObject({ status: 200, sha256: blob.sha256 });
    await c.request("DELETE", `/v1/exports/${id}`);
    expect(storage(n)).toEqual({ attachments: [], tmp: [] });
    expect((await fetchHashed(n, `/v1/exports/${id}/blob`)).status).toBe(404);
    c.close();
  });

  it("refuses to start with a malformed limit", async () => {
    const bad = runNode(peers, { ...nodes.fs!, dataDir: path.join(peers.tmp, "node-bad") }, { env: { GK_EXPORTS_MAX_BLOB_BYTES: "lots" } });
    await expect(bad).rejects.toThrow(/invalid export node configuration: GK_EXPORTS_MAX_BLOB_BYTES/);
  });
});
