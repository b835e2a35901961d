// A real S3-protocol server (s3rver) in its own process on a free port, with a temp directory
// and one bucket. stop() SIGKILLs it (an outage); start() brings it back on the same port and
// directory. Its own process because s3rver's ListObjectsV2 continuation tokens use DES, which
// Node 24's OpenSSL 3 only offers with --openssl-legacy-provider. GK_S3RVER_LOG=<file> logs requests.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../src/db/embedded.ts";
import { S3BlobStore } from "../../src/adapters/blobs/s3.ts";
import { killAndWait } from "./child.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// s3rver's DeleteObjects deletes a batch's keys concurrently and each prunes empty parent
// directories; two keys of one directory race there (ENOENT → HTTP 500). Real S3 has no such
// problem, so the test server serialises its deletes.
const CHILD = `
const S3rver = require("s3rver");
const FilesystemStore = require("s3rver/lib/stores/filesystem");
const deleteObject = FilesystemStore.prototype.deleteObject;
let chain = Promise.resolve();
FilesystemStore.prototype.deleteObject = function (...args) {
  const run = chain.then(() => deleteObject.apply(this, args));
  chain = run.catch(() => {});
  return run;
};
const [port, dir, bucket] = process.argv.slice(1);
const server = new S3rver({ address: "127.0.0.1", port: Number(port), silent: !process.env.GK_S3RVER_LOG, directory: dir,
  configureBuckets: [{ name: bucket, configs: [] }] });
server.run().then(() => process.stdout.write("ready\\n"), (e) => { console.error(e); process.exit(1); });
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
`;

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** A store talking to this server; one attempt per request, so outages surface at once. */
  store(opts?: { maxAttempts?: number }): S3BlobStore;
  start(): Promise<void>;
  /** Kills the server process (SIGKILL): connections drop, new ones are refused. */
  stop(): Promise<void>;
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>;
}

export async function startS3Server(bucket = "gk-test"): Promise<S3Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-s3rver-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const stores: S3BlobStore[] = [];
  const self: S3Server = {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    store(opts = {}) {
      const s = new S3BlobStore({
        bucket,
        endpoint: self.endpoint,
        forcePathStyle: true,
        region: "us-east-1",
        credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
        maxAttempts: opts.maxAttempts ?? 1,
        requestTimeoutMs: 10_000,
      });
      stores.push(s);
      return s;
    },
    async start() {
      const c = spawn(process.execPath, ["--openssl-legacy-provider", "-e", CHILD, String(port), dir, bucket], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = c;
      let stderr = "";
      c.stderr!.on("data", (d) => (stderr += d));
      if (process.env.GK_S3RVER_LOG) c.stdout!.pipe(fs.createWriteStream(process.env.GK_S3RVER_LOG, { flags: "a" }));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${stderr}`)), 30_000);
        c.stdout!.on("data", (d) => {
          if (String(d).includes("ready")) {
            clearTimeout(timer);
            resolve();
          }
        });
        c.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`s3rver exited with ${code}: ${stderr}`));
        });
      });
    },
    async stop() {
      const c = child;
      child = undefined;
      await killAndWait(c);
    },
    async dispose() {
      await self.stop();
      for (const s of stores) s.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}
