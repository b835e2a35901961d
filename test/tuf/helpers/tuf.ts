// Shared setup for the TUF tests: a team with an initialised repository, a blob store, an
// HTTP server serving it through the real route handler, and real tuf-js clients.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Updater } from "tuf-js";
import { SecretBox } from "../../../src/lib/secrets.ts";
import type { BlobStore } from "../../../src/adapters/blobs/types.ts";
import { fromPool } from "../../../src/tuf/db.ts";
import { handleTufRequest } from "../../../src/tuf/routes.ts";
import { initRepository, type InitOptions, type InitResult } from "../../../src/tuf/init.ts";
import { metadataKey, targetKey } from "../../../src/tuf/layout.ts";
import { publishTeam } from "../../../src/tuf/publish.ts";
import type { TestDb } from "../../helpers/db.ts";
import { runJobs, testServices } from "../../helpers/jobs.ts";
import { TestFsBlobStore } from "./fs-blobs.ts";
import { verifyAfterEach } from "./verifier.ts";

// Tasks build their SecretBox from the environment: one master key for the test process.
process.env.GK_MASTER_KEY ??= crypto.randomBytes(32).toString("base64");
export const box = new SecretBox(Buffer.from(process.env.GK_MASTER_KEY, "base64"));

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gk-tuf-${prefix}-`));
}

export interface TufFixture extends InitResult {
  team: string;
  blobs: TestFsBlobStore;
  keysDir: string;
  baseUrl: string;
  close(): Promise<void>;
}

/** Every repository this test file made: verifyEveryRepository checks them all after each test. */
const made: TufFixture[] = [];

/** Checks every repository of the file with securesystemslib after each test (test/tuf/helpers/verifier.ts). */
export function verifyEveryRepository(db: TestDb): void {
  verifyAfterEach(db, () => made);
}

export async function setupRepository(db: TestDb, opts: Partial<InitOptions> & { blobs?: TestFsBlobStore } = {}): Promise<TufFixture> {
  const team = opts.team ?? `team-${crypto.randomBytes(3).toString("hex")}`;
  await db.query("insert into gk_public.teams (name) values ($1) on conflict do nothing", [team]);
  const keysDir = opts.keysDir ?? tmpDir("keys");
  const blobs = opts.blobs ?? new TestFsBlobStore(tmpDir("blobs"));
  const init = await initRepository(fromPool(db.pool), box, { keys: 3, threshold: 2, bins: 16, ...opts, team, keysDir });
  await publishTeam(fromPool(db.pool), box, blobs, init.teamId);
  const server = await serve(db, blobs);
  const fx = { ...init, team, blobs, keysDir, baseUrl: server.url, close: server.close };
  made.push(fx);
  return fx;
}

export async function serve(db: TestDb, blobs: BlobStore): Promise<{ url: string; close(): Promise<void> }> {
  const srv = http.createServer((req, res) => {
    handleTufRequest(req, res, { pool: db.pool, blobs })
      .then((handled) => {
        if (!handled) {
          res.writeHead(404);
          res.end();
        }
      })
      .catch((e) => {
        res.writeHead(500);
        res.end(String(e));
      });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

/** A TUF client's local state: its metadata directory, trusting root v1 of the repository. */
export class Client {
  readonly dir = tmpDir("client");
  readonly metadataDir = path.join(this.dir, "metadata");
  readonly targetDir = path.join(this.dir, "targets");
  readonly fx: TufFixture;
  constructor(fx: TufFixture, trustedRoot: Uint8Array) {
    this.fx = fx;
    fs.mkdirSync(this.metadataDir, { recursive: true });
    fs.mkdirSync(this.targetDir, { recursive: true });
    fs.writeFileSync(path.join(this.metadataDir, "root.json"), trustedRoot);
  }
  static async create(fx: TufFixture): Promise<Client> {
    const root = await fx.blobs.get(metadataKey(fx.teamId, "1.root.json"));
    if (!root) throw new Error("1.root.json was not published");
    return new Client(fx, root);
  }
  /** tuf-js's default asks for targets as <dir>/<hash>.<name> (consistent snapshots). */
  prefixTargetsWithHash = false;
  /** A fresh Updater over the persisted state, as a client process would make on each run. */
  updater(): Updater {
    return new Updater({
      metadataDir: this.metadataDir,
      metadataBaseUrl: `${this.fx.baseUrl}/tuf/${this.fx.team}/metadata`,
      targetDir: this.targetDir,
      targetBaseUrl: `${this.fx.baseUrl}/tuf/${this.fx.team}/targets`,
      config: { prefixTargetsWithHash: this.prefixTargetsWithHash, fetchRetries: 0 },
    });
  }
  async refresh(): Promise<Updater> {
    const u = this.updater();
    await u.refresh();
    return u;
  }
  trusted(role: string): any {
    return JSON.parse(fs.readFileSync(path.join(this.metadataDir, `${role}.json`), "utf8"));
  }
  /** Refreshes, finds the target and downloads it (the client verifies length and hashes). */
  async download(targetPath: string): Promise<Buffer> {
    const u = await this.refresh();
    const info = await u.getTargetInfo(targetPath);
    if (!info) throw new Error(`target ${targetPath} not found by the client`);
    const file = path.join(this.targetDir, crypto.randomBytes(4).toString("hex"));
    await u.downloadTarget(info, file);
    return fs.readFileSync(file);
  }
}

/** Stores a target's content in the blob store and returns its row for tuf_add_targets. */
export async function storeTarget(fx: TufFixture, targetPath: string, content: string | Buffer, custom?: object) {
  const body = Buffer.from(content);
  await fx.blobs.put(targetKey(fx.teamId, targetPath), body);
  return {
    path: targetPath,
    length: body.length,
    hashes: { sha256: crypto.createHash("sha256").update(body).digest("hex") },
    ...(custom ? { custom } : {}),
  };
}

export function fakeTarget(i: number, prefix = "pkg") {
  const h = crypto.createHash("sha256").update(`${prefix}-${i}`).digest("hex");
  return { path: `${prefix}/${i}/image-${i}.bin`, length: 1000 + i, hashes: { sha256: h } };
}

export async function addTargets(db: TestDb, teamId: string, targets: object[]): Promise<number> {
  const { rows } = await db.query("select gk_public.tuf_add_targets($1, $2::jsonb) as n", [teamId, JSON.stringify(targets)]);
  return rows[0].n;
}

/** Makes the debounced publish due now and runs jobs until none is due. */
export async function publishNow(db: TestDb, blobs: BlobStore): Promise<void> {
  await db.query("update graphile_worker._private_jobs set run_at = now() where run_at > now()");
  await runJobs(db, testServices({ blobs }));
}
