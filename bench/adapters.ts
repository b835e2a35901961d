// Adapter benchmark, side by side in one run:
//  1. local CA revocation: N × revoke() vs one revokeMany() (what a batched revoke task gains);
//  2. local CA: issue() rate and the cost of one CRL regeneration with N entries;
//  3. purgePrefix on the filesystem store: page size 100 vs 1000.
// Usage: node bench/adapters.ts [N]  (default 500 × BENCH_SCALE)   (DATABASE_URL = a server to create a scratch database on;
// default postgres://postgres@127.0.0.1:5432/postgres; an embedded one when that is unreachable)
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FsBlobStore } from "../src/adapters/blobs/fs.ts";
import { purgePrefix } from "../src/adapters/blobs/purge-prefix.ts";
import { LocalCa } from "../src/adapters/ca/local.ts";
import { scaled } from "./lib/scale.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";
import { createPool } from "../src/db/pool.ts";
import { SecretBox } from "../src/lib/secrets.ts";

const N = Number(process.argv[2] ?? scaled(500, 20));
const now = () => performance.now();

const scratch = await scratchDatabase();
const pool = createPool(scratch.url, 4);
const box = new SecretBox(crypto.randomBytes(32));
const results: string[] = [];

try {
  const ca = new LocalCa(pool, box, { name: "bench", crlDebounceMs: 3600_000 });
  await ca.caCertificatePem();
  let t = now();
  const certs = [];
  for (let i = 0; i < 2 * N; i++)
    certs.push(await ca.issue({ commonName: `r${i}`, profile: "robot", notAfter: new Date(Date.now() + 86400_000) }));
  const issueMs = now() - t;
  results.push(`issue (key generated, signed, stored): ${((2 * N) / (issueMs / 1000)).toFixed(0)} certificates/s`);

  const one = certs.slice(0, N).map((c) => c.serial!);
  const batch = certs.slice(N).map((c) => c.serial!);
  t = now();
  for (const s of one) await ca.revoke(s, "unspecified");
  const oneMs = now() - t;
  t = now();
  await ca.revokeMany(batch, "unspecified");
  const batchMs = now() - t;
  results.push(
    `revoke ${N} serials: one by one ${oneMs.toFixed(0)} ms, revokeMany ${batchMs.toFixed(0)} ms → ${(oneMs / batchMs).toFixed(1)}× faster batched`,
  );

  t = now();
  await ca.refreshCrl({ force: true });
  const crlMs = now() - t;
  results.push(
    `CRL regeneration with ${2 * N} entries: ${crlMs.toFixed(0)} ms (done once per debounce interval, not per revocation: ${(crlMs * N).toFixed(0)} ms if per revocation)`,
  );

  const root = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bench-blobs-"));
  try {
    const store = new FsBlobStore(root);
    const keys = 4 * N;
    for (const pageSize of [100, 1000]) {
      for (let i = 0; i < keys; i++) await store.put(`team-${pageSize}/obj/${String(i).padStart(6, "0")}`, "x");
      t = now();
      const r = await purgePrefix(store, `team-${pageSize}/`, { pageSize, onProgress: () => {} });
      const ms = now() - t;
      results.push(
        `fs purgePrefix ${r.deleted} objects, page ${pageSize}: ${ms.toFixed(0)} ms (${(r.deleted / (ms / 1000)).toFixed(0)} objects/s)`,
      );
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
} finally {
  await pool.end();
  await scratch.drop();
}

console.log(`adapters benchmark (N=${N}, ${os.cpus().length} cores ${os.cpus()[0]?.model ?? ""}, Node ${process.version})`);
for (const r of results) console.log(`- ${r}`);
