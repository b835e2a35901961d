// The sweep of attachments no record holds (tasks/exports__sweep_attachments.ts) against two real
// export nodes, run as its task (an activation recorded with its status and errors): a node
// lists its attachments a page at a time (bad parameters: 400, nothing changes); an attachment
// made on a node with no record is detached once older than the grace period, a young one and
// one a record holds are kept; the attachment of a saga abandoned after its attach, whose record
// the coordinator gave back and created again, is detached and the image keeps exactly one live
// export; a node that is down is an item error while the other is swept, and is swept once it is
// back; a node with more pages than one activation sweeps resumes where it stopped.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeerClient } from "../../src/peers/client.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { clearJobs, jobs, runJobs } from "../helpers/jobs.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { coordinateOnce } from "./helpers/coordinate.ts";
import { blobStore, type NodeProcess, publishImages, refusal, runNode, startNode } from "./helpers/nodes.ts";

const TASK = "exports__sweep_attachments";
const db = await createTestDb();
const team = (await insertTeam(db, { name: "sweepers" })).id;
let peers: Peers;
const nodes: Record<"a" | "b", NodeProcess> = {} as never;
const clients = new Map<string, PeerClient>();

beforeAll(async () => {
  peers = await setupPeers(db, "sweep");
  nodes.a = await startNode(peers, "a");
  nodes.b = await startNode(peers, "b");
}, 120_000);

afterAll(async () => {
  for (const c of clients.values()) c.close();
  for (const n of Object.values(nodes)) await n?.proc.stop("SIGKILL");
  await peers?.close();
});

async function client(n: NodeProcess): Promise<PeerClient> {
  let c = clients.get(n.url);
  if (!c) {
    c = new PeerClient(n.url, (await peers.identity.current())!, { profile: "worker", commonName: n.workerId });
    clients.set(n.url, c);
  }
  return c;
}

/** An attachment made on the node directly (no record names it), of new bytes; its id. */
async function attachDirectly(n: NodeProcess, id: string = crypto.randomUUID()): Promise<string> {
  const bytes = crypto.randomBytes(4096);
  const blob_key = `teams/${team}/images/fw/${crypto.randomUUID()}.bin`;
  await blobStore(peers).store.put(blob_key, bytes);
  const sha256 = crypto.createHash("sha256").update(bytes).digest("hex");
  await (await client(n)).request("POST", "/v1/exports", { attachment_id: id, blob_key, sha256, length: bytes.length });
  return id;
}

/** Makes the node's attachment look attached `seconds` ago (its .json is what the node lists). */
function age(n: NodeProcess, id: string, seconds = 3600): void {
  const file = path.join(n.dataDir, "exports", "attachments", `${id}.json`);
  const a = JSON.parse(fs.readFileSync(file, "utf8"));
  a.attached_at = new Date(Date.now() - seconds * 1000).toISOString();
  fs.writeFileSync(file, JSON.stringify(a));
}

/** The test's process of the export node with this id. */
async function nodeOf(nodeId: string): Promise<NodeProcess> {
  const { rows } = await db.query("select worker_id from gk_public.export_nodes where id = $1", [nodeId]);
  return rows[0].worker_id === nodes.a.workerId ? nodes.a : nodes.b;
}

const has = (n: NodeProcess, id: string) => n.attachments().includes(`${id}.json`);

/** One activation of the sweep as its task runs it; its status, errors and whether it asked for another soon. */
async function sweep(limits: Record<string, number> = {}) {
  await db.query("select gk_private.enqueue($1, $2::jsonb, job_key := $1, queue_name := $1)", [TASK, JSON.stringify({ limits })]);
  await runJobs(db, peers.services);
  const { rows } = await db.query("select id, status, error, details from gk_public.activations where task = $1 order by id desc limit 1", [
    TASK,
  ]);
  const left = await jobs(db, TASK);
  await clearJobs(db);
  return { ...rows[0], again: left.length > 0, left };
}

async function nodeRow(n: NodeProcess) {
  return (
    await db.query("select id, attachments_sweep_after, attachments_swept_at from gk_public.export_nodes where worker_id = $1", [
      n.workerId,
    ])
  ).rows[0];
}

describe("an export node lists its attachments", () => {
  it("a page at a time in id order with its clock; bad parameters are refused with 400 and change nothing", async () => {
    const n = nodes.a;
    const ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"];
    for (const id of ids) await attachDirectly(n, id);
    const c = await client(n);
    type Page = { now: string; attachments: { attachment_id: string; attached_at: string }[]; next_after: string | null };
    const first = await c.request<Page>("GET", "/v1/exports?limit=2");
    expect(first.attachments.map((a) => a.attachment_id)).toEqual(ids.slice(0, 2));
    expect(first.next_after).toBe(ids[1]);
    expect(Math.abs(Date.parse(first.now) - Date.now())).toBeLessThan(60_000);
    for (const a of first.attachments) expect(Date.parse(a.attached_at)).toBeLessThanOrEqual(Date.parse(first.now));
    const rest = await c.request<Page>("GET", `/v1/exports?after=${ids[1]}&limit=2`);
    expect(rest.attachments.map((a) => a.attachment_id)).toEqual([ids[2]]);
    expect(rest.next_after).toBeNull();
    const before = n.attachments();
    for (const q of ["limit=0", "limit=1001", "limit=ten", "limit=-1", "after=not-a-uuid", "other=1", "limit=1&limit=2"]) {
      const r = await refusal(c.request("GET", `/v1/exports?${q}`));
      expect(r.status, q).toBe(400);
    }
    expect(n.attachments()).toEqual(before);
    for (const id of ids) await c.request("DELETE", `/v1/exports/${id}`);
  });
});

describe("the sweep of attachments no record holds", () => {
  it("detaches an old unreferenced attachment and keeps a young one and one a live export holds", async () => {
    await publishImages(db, peers, team, 2);
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    const live = (await db.query("select node_id, attachment_id from gk_public.exports where state = 'live'")).rows;
    expect(live.length).toBe(2);
    for (const l of live) age(await nodeOf(l.node_id), l.attachment_id);
    const orphan = await attachDirectly(nodes.a);
    age(nodes.a, orphan);
    const young = await attachDirectly(nodes.b);

    const s = await sweep();
    expect(s).toMatchObject({ status: "succeeded", again: false });
    expect(s.details).toMatchObject({ nodes: 2, nodes_failed: 0, listed: 4, referenced: 2, young: 1, detached: 1, errors: [] });
    expect(s.details.detached_ids).toEqual([orphan]);
    expect(has(nodes.a, orphan)).toBe(false);
    expect(has(nodes.b, young)).toBe(true);
    for (const l of live) expect(has(await nodeOf(l.node_id), l.attachment_id)).toBe(true);
    expect((await nodeRow(nodes.a)).attachments_swept_at).not.toBeNull();

    // Once old, the young one goes too.
    age(nodes.b, young);
    expect((await sweep()).details).toMatchObject({ detached: 1, detached_ids: [young] });
    expect(has(nodes.b, young)).toBe(false);
  });

  it("detaches the attachment of a saga abandoned after its attach, whose record was given back: one live export left", async () => {
    const { images } = await publishImages(db, peers, team, 1);
    const img = images[0]!;
    await coordinateOnce(db, peers.services); // settled: a record already taken by its saga and placed
    const [rec] = (
      await db.query("select id, saga_id, node_id, attachment_id from gk_public.exports where resource_id = $1 and state = 'assigning'", [
        img.id,
      ])
    ).rows;
    const n = await nodeOf(rec.node_id);
    // Its attach reached the node; then the saga was abandoned before live (its job gone, its
    // row finished without its undo).
    await (await client(n)).request("POST", "/v1/exports", {
      attachment_id: rec.attachment_id,
      blob_key: img.blob_key,
      sha256: img.sha256,
      length: Number(img.length),
    });
    await clearJobs(db);
    await db.query(
      "update gk_public.sagas set state = 'failed', failed_step = 'live', error = 'abandoned', finished_at = now() where id = $1",
      [rec.saga_id],
    );
    // Its lease runs out: the coordinator gives the record back and creates it again.
    await db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second' where id = $1", [rec.id]);
    expect((await coordinateOnce(db, peers.services)).overdue_released).toBe(1);
    await runJobs(db, peers.services);
    const after = (await db.query("select state, node_id, attachment_id from gk_public.exports where id = $1", [rec.id])).rows[0];
    expect(after.state).toBe("live");
    expect(after.attachment_id).not.toBe(rec.attachment_id);
    const m = await nodeOf(after.node_id);
    age(n, rec.attachment_id);
    age(m, after.attachment_id);

    const s = await sweep();
    expect(s.details).toMatchObject({ nodes_failed: 0, detached: 1, detached_ids: [rec.attachment_id] });
    expect(has(n, rec.attachment_id)).toBe(false);
    expect(has(m, after.attachment_id)).toBe(true);
    const exports = await db.query("select state, attachment_id from gk_public.exports where resource_id = $1 and state <> 'deleted'", [
      img.id,
    ]);
    expect(exports.rows).toEqual([{ state: "live", attachment_id: after.attachment_id }]);
    const served = await (await client(m)).download(`/v1/exports/${after.attachment_id}/blob`);
    expect(crypto.createHash("sha256").update(served).digest("hex")).toBe(img.sha256);
  });

  it("a node that is down is an item error; the other is swept, and it is swept once back", async () => {
    const onA = await attachDirectly(nodes.a);
    const onB = await attachDirectly(nodes.b);
    age(nodes.a, onA);
    age(nodes.b, onB);
    await nodes.b.proc.stop("SIGKILL");
    // b is looked at first (least recently swept): its failure must not keep a from being swept.
    await db.query("update gk_public.export_nodes set attachments_swept_at = null where worker_id = $1", [nodes.b.workerId]);
    const s = await sweep();
    expect(s.status).toBe("succeeded");
    expect(s.details).toMatchObject({ nodes: 2, nodes_failed: 1, detached: 1, detached_ids: [onA] });
    expect(s.details.errors).toEqual([expect.stringMatching(/^node b: /)]);
    const errs = await db.query("select item from gk_public.activation_errors where activation_id = $1", [s.id]);
    expect(errs.rows).toEqual([{ item: "node b" }]);
    expect(has(nodes.a, onA)).toBe(false);
    expect(has(nodes.b, onB)).toBe(true); // nothing lost: it is still there for the next sweep

    nodes.b = await runNode(peers, nodes.b);
    const again = await sweep();
    expect(again.details).toMatchObject({ nodes_failed: 0, detached: 1, detached_ids: [onB] });
    expect(has(nodes.b, onB)).toBe(false);
  });

  it("resumes a node with more pages than one activation sweeps where it stopped", async () => {
    // Node a's first page (ids sort first) is two young attachments, kept; its last two old orphans.
    const young = ["00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-0000000000a2"];
    const old = ["ffffffff-ffff-4fff-8fff-fffffffffff1", "ffffffff-ffff-4fff-8fff-fffffffffff2"];
    for (const id of [...young, ...old]) await attachDirectly(nodes.a, id);
    for (const id of old) age(nodes.a, id);
    const limits = { page_size: 2, max_pages_per_node: 1 };
    const first = await sweep(limits);
    expect(first).toMatchObject({ again: true });
    expect(first.details.nodes_unfinished).toBeGreaterThan(0);
    expect(first.details.listed).toBeLessThanOrEqual(4); // one page of 2 per node
    expect((await nodeRow(nodes.a)).attachments_sweep_after).toBe(young[1]);
    // The next activations go on after it (from the first page again, they would never get past the young ones).
    const detached: string[] = [...first.details.detached_ids];
    for (let i = 0; i < 10 && (await nodeRow(nodes.a)).attachments_sweep_after !== null; i++) {
      const next = await sweep(limits);
      expect(next.details.listed).toBeLessThanOrEqual(4);
      detached.push(...next.details.detached_ids);
    }
    expect((await nodeRow(nodes.a)).attachments_sweep_after).toBeNull();
    expect(detached.sort()).toEqual(old);
    expect([...young, ...old].filter((id) => has(nodes.a, id))).toEqual(young);
    for (const id of young) await (await client(nodes.a)).request("DELETE", `/v1/exports/${id}`);
  });

  it("refuses a grace period not longer than the attach deadline, once (the job is not retried)", async () => {
    const s = await sweep({ grace_seconds: 120 });
    expect(s.status).toBe("failed");
    expect(s.error).toMatch(/grace_seconds \(120\) must be longer than the attach deadline/);
    // Not retried: the job failed for good, with the reason.
    expect(s.left).toEqual([
      expect.objectContaining({
        attempts: 1,
        max_attempts: 1,
        last_error: expect.stringMatching(/must be longer than the attach deadline/),
      }),
    ]);
  });
});
