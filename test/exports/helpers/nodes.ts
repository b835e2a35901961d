// Export nodes for the tests: real `groundskeeper agent --roles exports` processes enrolled like
// any worker, sharing a filesystem blob store with the test (which puts the images' bytes there),
// and real images whose digests describe those bytes.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { FsBlobStore } from "../../../src/adapters/blobs/fs.ts";
import { PeerHttpError } from "../../../src/peers/client.ts";
import type { LongRunning } from "../../helpers/cli.ts";
import type { TestDb } from "../../helpers/db.ts";
import { type ImageRow, insertImages } from "../../helpers/fixtures/index.ts";
import { type Peers, spawnAgent } from "../../helpers/peers.ts";

export interface NodeProcess {
  name: string;
  workerId: string;
  creds: string;
  dataDir: string;
  proc: LongRunning;
  url: string;
  /** The role's storage: attachments/<id>.blob and .json. */
  attachments(): string[];
}

export function blobStore(peers: Peers): { dir: string; store: FsBlobStore } {
  const dir = path.join(peers.tmp, "blobs");
  return { dir, store: new FsBlobStore(dir) };
}

/** Enrols a worker and starts its agent with the exports role. */
export async function startNode(
  peers: Peers,
  name: string,
  opts: { env?: Record<string, string>; crlRefreshMs?: number } = {},
): Promise<NodeProcess> {
  const e = await peers.enroll(name);
  return runNode(peers, { name, workerId: e.workerId, creds: e.dir, dataDir: path.join(peers.tmp, `node-${name}`) }, opts);
}

/** (Re)starts a node's agent on its credentials and data directory. */
export async function runNode(
  peers: Peers,
  n: { name: string; workerId: string; creds: string; dataDir: string },
  opts: { env?: Record<string, string>; crlRefreshMs?: number } = {},
): Promise<NodeProcess> {
  const { proc, url } = await spawnAgent(peers, n.creds, n.dataDir, {
    roles: ["exports"],
    ...(opts.crlRefreshMs === undefined ? {} : { crlRefreshMs: opts.crlRefreshMs }),
    extraEnv: { GK_BLOBS: "fs", GK_BLOBS_DIR: blobStore(peers).dir, ...opts.env },
  });
  const dir = path.join(n.dataDir, "exports", "attachments");
  return { ...n, proc, url, attachments: () => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) };
}

/** `count` images of the team with distinct real bytes in the blob store. */
export async function publishImages(
  db: TestDb,
  peers: Peers,
  team: string,
  count: number,
): Promise<{ images: ImageRow[]; bytes: Map<string, Buffer> }> {
  const { store } = blobStore(peers);
  const images: ImageRow[] = [];
  const bytes = new Map<string, Buffer>();
  // One insert per image: each has its own bytes (the fixture's digests describe one blob).
  for (let i = 0; i < count; i++) {
    const b = crypto.randomBytes(1024 + i);
    const [img] = await insertImages(db, { team, bytes: b, count: 1 });
    await store.put(img!.blob_key, b);
    images.push(img!);
    bytes.set(img!.id, b);
  }
  return { images, bytes };
}

/** The status and message a node refused a call with (a call that succeeds fails the test). */
export async function refusal(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PeerHttpError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error("expected the node to refuse");
}
