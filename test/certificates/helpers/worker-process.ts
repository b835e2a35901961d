// A real worker process for the fault tests: graphile-worker with our tasks, the local CA (state in
// the database) and a filesystem blob store, all from the environment. The test SIGKILLs it.
//   DATABASE_URL, GK_MASTER_KEY, GK_CA_NAME, GK_BLOBS_DIR     where things are
//   GK_TEST_SLOW_MS    sleep before each CA revocation call and each blob page delete, so a test
//                      can kill the process mid-drain (the effects themselves are the real ones)
//   GK_TEST_EFFECT_LOG append one line per effect to this file: "<pid> revoke <serial>…" per CA
//                      revocation call, "<pid> purge <n>" per blob page deleted
//   GK_TEST_CONCURRENCY jobs at once (default 4)
//   GK_CFSSL_URL       the CA is a real `cfssl serve` there (test/helpers/cfssl.ts) instead of the
//                      local CA
//   GK_TEST_HOLD_ISSUE each CA issue call signs for real, logs "<pid> signed <request key>" and
//                      then never answers: a SIGKILL now is a worker killed after the CA signed
//                      and before anything was recorded
//   GK_TEST_PURGE_PAUSE_MS  blob deletes in the filesystem store's two phases with a pause between:
//                      the page's files are unlinked (logged "<pid> unlinked <n>"), then, after
//                      the pause, their emptied directories pruned — a SIGKILL in the pause is a
//                      worker killed after its deletes landed and before it tidied or recorded
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { pino } from "pino";
import { FsBlobStore } from "../../../src/adapters/blobs/fs.ts";
import type { BlobStore } from "../../../src/adapters/blobs/types.ts";
import { CfsslCa } from "../../../src/adapters/ca/cfssl.ts";
import { LocalCa } from "../../../src/adapters/ca/local.ts";
import { withTimeout } from "../../../src/adapters/ca/timeout.ts";
import type { CertificateAuthority } from "../../../src/adapters/ca/types.ts";
import { createPool } from "../../../src/db/pool.ts";
import { secretBoxFromEnv } from "../../../src/lib/secrets.ts";
import { startWorker } from "../../../src/worker/runner.ts";

const env = process.env;
const url = env.DATABASE_URL!;
const slow = Number(env.GK_TEST_SLOW_MS ?? 0);
const sleep = () => new Promise((r) => setTimeout(r, slow));
const effectLog = env.GK_TEST_EFFECT_LOG;

const pool = createPool(url, 4);
// Seals the keys the CA makes (the issue task asks the CA for such a certificate only with one).
const secrets = secretBoxFromEnv(env, "/nonexistent");
const real: CertificateAuthority = env.GK_CFSSL_URL
  ? new CfsslCa({ url: env.GK_CFSSL_URL, crlCacheMs: 0, timeoutMs: 60_000 })
  : new LocalCa(pool, secrets, { name: env.GK_CA_NAME ?? "default", crlDebounceMs: 0 });
const holdIssue = env.GK_TEST_HOLD_ISSUE === "1";
const logEffect = (kind: string, items: (string | number)[]) => {
  if (effectLog) fs.appendFileSync(effectLog, `${process.pid} ${kind} ${items.join(" ")}\n`);
};
const logRevocation = (serials: string[]) => logEffect("revoke", serials);
const ca: CertificateAuthority = {
  kind: real.kind,
  issue: async (r) => {
    const res = await real.issue(r);
    if (!holdIssue) return res;
    logEffect("signed", [r.requestKey ?? ""]);
    return new Promise<never>(() => {});
  },
  fetch: (r) => real.fetch(r),
  revoke: async (s, reason) => (await sleep(), await real.revoke(s, reason), logRevocation([s])),
  crlPem: () => real.crlPem(),
  caCertificatePem: () => real.caCertificatePem(),
};
if (real.revokeMany) ca.revokeMany = async (s, reason) => (await sleep(), await real.revokeMany!(s, reason), logRevocation(s));
if (real.lookup) ca.lookup = (k) => real.lookup!(k);
const fsStore = new FsBlobStore(env.GK_BLOBS_DIR!);
const pauseMs = Number(env.GK_TEST_PURGE_PAUSE_MS ?? 0);
const objects = path.join(env.GK_BLOBS_DIR!, "objects");
async function deleteInTwoPhases(keys: string[]) {
  const files = keys.map((k) => path.join(objects, ...k.split("/")));
  await Promise.all(files.map((f) => fsp.rm(f, { force: true })));
  logEffect("unlinked", [keys.length]);
  await new Promise((r) => setTimeout(r, pauseMs));
  for (let dir of [...new Set(files.map((f) => path.dirname(f)))]) {
    while (
      dir.startsWith(objects + path.sep) &&
      (await fsp.rmdir(dir).then(
        () => true,
        () => false,
      ))
    )
      dir = path.dirname(dir);
  }
}
const blobs: BlobStore = {
  kind: fsStore.kind,
  put: (k, b) => fsStore.put(k, b),
  get: (k) => fsStore.get(k),
  getStream: (k, o) => fsStore.getStream(k, o),
  list: (p, o) => fsStore.list(p, o),
  deleteMany: async (keys) =>
    pauseMs > 0 ? deleteInTwoPhases(keys) : (await sleep(), await fsStore.deleteMany(keys), logEffect("purge", [keys.length])),
  pruneEmpty: (p) => fsStore.pruneEmpty(p),
};

// Every CA call gets a deadline as under `groundskeeper worker` (GK_CA_TIMEOUT_MS); short here, so
// the claims of a killed worker (the lease plus this) run out within the test.
const timedCa = withTimeout(ca, Number(env.GK_CA_TIMEOUT_MS ?? 5000));
const runner = await startWorker({
  databaseUrl: url,
  services: { log: pino({ level: env.TEST_WORKER_LOG_LEVEL ?? "silent" }), secrets, ca: timedCa, blobs },
  concurrency: Number(env.GK_TEST_CONCURRENCY ?? 4),
  cron: false,
  pollInterval: 200,
});
process.stdout.write("ready\n");
process.on(
  "SIGTERM",
  () =>
    void runner
      .stop()
      .then(() => pool.end())
      .then(() => process.exit(0)),
);
await runner.promise;
