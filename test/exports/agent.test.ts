// The export node as a real process (`groundskeeper agent --roles exports`): it registers its
// worker as an export node and heartbeats its attachment count; attaches a blob from the blob
// store after checking its length and sha256 (twice is once; a wrong digest or a missing blob
// attaches nothing), serves it read-only at a stable path, reports it (404 when it does not have
// it: after a restart that lost its storage), and detaches (a missing attachment is fine).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportNodes } from "../../src/exports/nodes.ts";
import { PeerHttpError } from "../../src/peers/client.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { waitFor } from "../helpers/wait.ts";
import { blobStore, type NodeProcess, runNode, startNode } from "./helpers/nodes.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "exporters" })).id;
let peers: Peers;
let node: NodeProcess;
let nodes: ExportNodes;
let nodeId: string;

beforeAll(async () => {
  peers = await setupPeers(db, "exports");
  node = await startNode(peers, "n1");
  nodeId = (await db.query("select id from gk_public.export_nodes where worker_id = $1", [node.workerId])).rows[0].id;
  nodes = new ExportNodes(peers.services, { parallelism: 2, timeoutMs: 20_000, attachTimeoutMs: 20_000 });
});

afterAll(async () => {
  nodes?.close();
  await node?.proc.stop("SIGKILL");
  await peers?.close();
});

const client = () => nodes.client({ id: nodeId, worker_id: node.workerId, address: node.url });

async function status(id: string): Promise<number> {
  try {
    await (await client()).request("GET", `/v1/exports/${id}`);
    return 200;
  } catch (e) {
    if (e instanceof PeerHttpError) return e.status;
    throw e;
  }
}

async function refusal(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PeerHttpError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error("expected the node to refuse");
}

async function putBlob(): Promise<{ blob_key: string; sha256: string; length: number; bytes: Buffer }> {
  const bytes = crypto.randomBytes(200_000);
  const blob_key = `teams/${team}/images/fw/${crypto.randomUUID()}.bin`;
  await blobStore(peers).store.put(blob_key, bytes);
  return { blob_key, sha256: crypto.createHash("sha256").update(bytes).digest("hex"), length: bytes.length, bytes };
}

describe("export node", () => {
  it("registers its worker as an in-service export node and heartbeats its attachment count", async () => {
    const row = (await db.query("select state, address from gk_public.export_nodes where id = $1", [nodeId])).rows[0];
    expect(row).toEqual({ state: "in_service", address: node.url });
    const blob = await putBlob();
    const c = await client();
    const id = crypto.randomUUID();
    await c.request("POST", "/v1/exports", { attachment_id: id, blob_key: blob.blob_key, sha256: blob.sha256, length: blob.length });
    await waitFor(
      async () => (await db.query("select attachments from gk_public.export_nodes where id = $1", [nodeId])).rows[0].attachments >= 1,
      "heartbeat",
    );
    await c.request("DELETE", `/v1/exports/${id}`);
  });

  it("attaches a verified copy once, serves it read-only at a stable path, detaches (missing is fine)", async () => {
    const blob = await putBlob();
    const c = await client();
    const id = crypto.randomUUID();
    const body = { attachment_id: id, blob_key: blob.blob_key, sha256: blob.sha256, length: blob.length };
    const first = await c.request<{ path: string }>("POST", "/v1/exports", body);
    const again = await c.request<{ path: string }>("POST", "/v1/exports", body);
    expect(again).toEqual(first);
    expect(first.path).toBe(`/v1/exports/${id}/blob`);
    // The copy is the node's own: gone from the blob store, it is still served.
    await blobStore(peers).store.deleteMany([blob.blob_key]);
    const served = await c.download(first.path);
    expect(crypto.createHash("sha256").update(served).digest("hex")).toBe(blob.sha256);
    expect(await status(id)).toBe(200);
    // The same id for another blob is refused.
    const other = await putBlob();
    expect(
      (await refusal(c.request("POST", "/v1/exports", { ...body, blob_key: other.blob_key, sha256: other.sha256, length: other.length })))
        .status,
    ).toBe(409);
    await c.request("DELETE", `/v1/exports/${id}`);
    await c.request("DELETE", `/v1/exports/${id}`);
    expect(await status(id)).toBe(404);
    expect((await refusal(c.download(first.path))).status).toBe(404);
    expect(node.attachments()).toEqual([]);
  });

  it("refuses a wrong digest, a wrong length, a missing blob and a malformed body, attaching nothing", async () => {
    const blob = await putBlob();
    const c = await client();
    const id = crypto.randomUUID();
    const base = { attachment_id: id, blob_key: blob.blob_key, sha256: blob.sha256, length: blob.length };
    const wrongSha = await refusal(c.request("POST", "/v1/exports", { ...base, sha256: "0".repeat(64) }));
    expect(wrongSha).toMatchObject({ status: 422 });
    expect(wrongSha.message).toMatch(/has sha256 [0-9a-f]{64}, expected 0{64}/);
    expect((await refusal(c.request("POST", "/v1/exports", { ...base, length: blob.length + 1 }))).status).toBe(422);
    expect((await refusal(c.request("POST", "/v1/exports", { ...base, blob_key: `${blob.blob_key}.missing` }))).status).toBe(404);
    expect((await refusal(c.request("POST", "/v1/exports", { ...base, attachment_id: "not-a-uuid" }))).status).toBe(400);
    expect((await refusal(c.request("POST", "/v1/exports", { ...base, extra: 1 }))).status).toBe(400);
    expect(await status(id)).toBe(404);
    expect(node.attachments()).toEqual([]);
  });

  it("keeps its attachments across a restart, and answers 404 for those a restart without its storage lost", async () => {
    const blob = await putBlob();
    const id = crypto.randomUUID();
    await (await client()).request("POST", "/v1/exports", {
      attachment_id: id,
      blob_key: blob.blob_key,
      sha256: blob.sha256,
      length: blob.length,
    });
    await node.proc.stop("SIGKILL");
    node = await runNode(peers, node);
    expect(await status(id)).toBe(200);
    await node.proc.stop("SIGKILL");
    fs.rmSync(path.join(node.dataDir, "exports"), { recursive: true, force: true });
    node = await runNode(peers, node);
    expect(await status(id)).toBe(404);
  });
});
