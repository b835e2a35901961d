// One real export node (`groundskeeper agent --roles exports`), first on its own, then under the
// sagas. The node: it registers its worker as an export node and heartbeats its attachment count;
// attaches a blob from the blob store after checking its length and sha256 (twice is once; a
// wrong digest or a missing blob attaches nothing), serves it read-only at a stable path, reports
// it (404 when it does not have it), detaches (missing is fine). (Restarts, with and without the
// node's storage, are in processes.test.ts.) The create and delete sagas: every action run twice;
// a failure injected after each step unwinds to the start state (the record as it was, and for
// create nothing left on the node); a duplicate start of the same generation unwinds at its first
// step and changes nothing; no node to place on unwinds to requested.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportNodes } from "../../src/exports/nodes.ts";
import { createExport } from "../../src/exports/sagas/create.ts";
import { deleteExport } from "../../src/exports/sagas/delete.ts";
import { PeerClient, PeerHttpError } from "../../src/peers/client.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertExports, insertTeam } from "../helpers/fixtures/index.ts";
import { clearJobs, jobs, runJobs } from "../helpers/jobs.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { actionFailureCanUnwind, actionsSucceedIdempotently, runSagaInProcess, sagaEvents } from "../helpers/saga.ts";
import { waitFor } from "../helpers/wait.ts";
import { coordinateOnce } from "./helpers/coordinate.ts";
import { blobStore, type NodeProcess, refusal, publishImages, startNode } from "./helpers/nodes.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "exporters" })).id;
let peers: Peers;
let node: NodeProcess;
let nodeId: string;
let nodeClients: ExportNodes;

beforeAll(async () => {
  peers = await setupPeers(db, "exports");
  node = await startNode(peers, "n1");
  nodeId = (await db.query("select id from gk_public.export_nodes where worker_id = $1", [node.workerId])).rows[0].id;
  nodeClients = new ExportNodes(peers.services, { parallelism: 2, timeoutMs: 20_000, attachTimeoutMs: 20_000 });
});

afterAll(async () => {
  nodeClients?.close();
  await node?.proc.stop("SIGKILL");
  await peers?.close();
});

async function record(id: string) {
  const { rows } = await db.query(
    "select state, node_id, attachment_id, url, operating_saga_id, delete_requested_at is not null as doomed from gk_public.exports where id = $1",
    [id],
  );
  return rows[0];
}

/** A requested record for a new image with real bytes in the blob store. */
async function requested(): Promise<{ exportId: string; bytes: Buffer }> {
  const { images, bytes } = await publishImages(db, peers, team, 1);
  const [rec] = await insertExports(db, { images: [images[0]!] });
  return { exportId: rec!.id, bytes: bytes.get(images[0]!.id)! };
}

async function download(url: string): Promise<Buffer> {
  const creds = (await peers.identity.current())!;
  const u = new URL(url);
  const c = new PeerClient(u.origin, creds, { profile: "worker", commonName: node.workerId });
  try {
    return await c.download(u.pathname);
  } finally {
    c.close();
  }
}

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

const client = () => nodeClients.client({ id: nodeId, worker_id: node.workerId, address: node.url });

async function status(id: string): Promise<number> {
  try {
    await (await client()).request("GET", `/v1/exports/${id}`);
    return 200;
  } catch (e) {
    if (e instanceof PeerHttpError) return e.status;
    throw e;
  }
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
});

describe("exports__create", () => {
  const bytesOf = new Map<string, Buffer>();
  const createCase = {
    async setup() {
      const r = await requested();
      bytesOf.set(r.exportId, r.bytes);
      return { export_id: r.exportId, generation: 1 };
    },
    snapshot: async (p: { export_id: string }) => ({ record: await record(p.export_id), onNode: node.attachments() }),
    async verify(p: { export_id: string }) {
      const r = await record(p.export_id);
      expect(r).toMatchObject({ state: "live", node_id: nodeId, operating_saga_id: null });
      expect(sha(await download(r.url))).toBe(sha(bytesOf.get(p.export_id)!));
    },
  };

  it("succeeds with every action run twice: live on the node, downloadable, hash checked", async () => {
    await actionsSucceedIdempotently(db, createExport, { ...createCase, services: peers.services });
  });

  it("unwinds from a failure after each step to requested, with nothing left on the node", async () => {
    await actionFailureCanUnwind(db, createExport, { ...createCase, services: peers.services });
  });

  it("as a batch of 3 in one job: every action twice succeeds for each, and a failure after each step unwinds each", async () => {
    await actionsSucceedIdempotently(db, createExport, { ...createCase, services: peers.services }, { batch: 3 });
    await actionFailureCanUnwind(db, createExport, { ...createCase, services: peers.services }, { batch: 3 });
  });

  it("a duplicate start of the same generation unwinds at take and changes nothing", async () => {
    const { exportId } = await requested();
    const first = await createExport.start(db, { export_id: exportId, generation: 1 });
    const dup = await createExport.start(db, { export_id: exportId, generation: 1 });
    expect((await runSagaInProcess(db, createExport, first, undefined, peers.services)).state).toBe("succeeded");
    const before = await record(exportId);
    const row = await runSagaInProcess(db, createExport, dup, undefined, peers.services);
    expect(row).toMatchObject({ state: "failed", failed_step: "take" });
    expect(await sagaEvents(db, dup)).toEqual(["failed take", "undone take"]);
    expect(await record(exportId)).toEqual(before);
  });

  it("with no in-service node it unwinds to requested", async () => {
    // (Its heartbeat keeps it fresh, so it is taken out of service instead.)
    await db.query("update gk_public.export_nodes set state = 'expunged', expunged_at = now() where id = $1", [nodeId]);
    try {
      const { exportId } = await requested();
      const row = await runSagaInProcess(
        db,
        createExport,
        await createExport.start(db, { export_id: exportId, generation: 1 }),
        undefined,
        peers.services,
      );
      expect(row).toMatchObject({
        state: "failed",
        failed_step: "take",
        error: "no in-service export node with a fresh heartbeat",
      });
      expect(await record(exportId)).toMatchObject({ state: "requested", node_id: null, operating_saga_id: null });
    } finally {
      await db.query("update gk_public.export_nodes set state = 'in_service', expunged_at = null where id = $1", [nodeId]);
    }
  });
});

describe("exports__delete", () => {
  /** A live export (made by the create saga), then marked for deletion. */
  async function doomed(): Promise<{ export_id: string; generation: number; url: string }> {
    const { exportId } = await requested();
    await runSagaInProcess(
      db,
      createExport,
      await createExport.start(db, { export_id: exportId, generation: 1 }),
      undefined,
      peers.services,
    );
    const { rows } = await db.query("update gk_public.exports set delete_requested_at = now() where id = $1 returning generation, url", [
      exportId,
    ]);
    return { export_id: exportId, generation: Number(rows[0].generation) + 1, url: rows[0].url };
  }

  const deleteCase = {
    async setup() {
      const d = await doomed();
      return { export_id: d.export_id, generation: d.generation };
    },
    // The record only: detach has no undo (a record back to live is still marked, so the next
    // delete saga detaches again, a missing attachment being fine).
    snapshot: async (p: { export_id: string }) => record(p.export_id),
    async verify(p: { export_id: string }) {
      expect(await record(p.export_id)).toMatchObject({ state: "deleted", operating_saga_id: null });
      const att = (await record(p.export_id)).attachment_id;
      expect(node.attachments().filter((f: string) => f.startsWith(att))).toEqual([]);
    },
  };

  it("succeeds with every action run twice: deleted, and the node no longer serves it", async () => {
    await actionsSucceedIdempotently(db, deleteExport, { ...deleteCase, services: peers.services });
  });

  it("unwinds from a failure after each step back to live (still marked)", async () => {
    await actionFailureCanUnwind(db, deleteExport, { ...deleteCase, services: peers.services });
  });

  it("as a batch of 3 in one job: every action twice succeeds for each, and a failure after each step unwinds each", async () => {
    await actionsSucceedIdempotently(db, deleteExport, { ...deleteCase, services: peers.services }, { batch: 3 });
    await actionFailureCanUnwind(db, deleteExport, { ...deleteCase, services: peers.services }, { batch: 3 });
  });

  it("an expunged node counts as gone: the record is deleted whether or not the node answers", async () => {
    const d = await doomed();
    await db.query("update gk_public.export_nodes set state = 'expunged', expunged_at = now() where id = $1", [nodeId]);
    try {
      const row = await runSagaInProcess(
        db,
        deleteExport,
        await deleteExport.start(db, { export_id: d.export_id, generation: d.generation }),
        undefined,
        peers.services,
      );
      expect(row.state).toBe("succeeded");
      expect(await record(d.export_id)).toMatchObject({ state: "deleted" });
    } finally {
      await db.query("update gk_public.export_nodes set state = 'in_service', expunged_at = null where id = $1", [nodeId]);
    }
  });
});

describe("a queued saga that dies before its take", () => {
  const activation = () => coordinateOnce(db, peers.services);

  /**
   * A new image, settled by the coordinator into a record whose create saga it started (queued),
   * written already taken by that saga and placed.
   */
  async function queued(): Promise<{ exportId: string; sagaId: string; jobId: string }> {
    const { images } = await publishImages(db, peers, team, 1);
    await activation();
    const { rows } = await db.query(
      "select id, saga_id, saga_queued_until is not null as queued from gk_public.exports where resource_id = $1 and state = 'assigning'",
      [images[0]!.id],
    );
    expect(rows[0]).toMatchObject({ queued: true });
    const job = (await jobs(db, "exports__create")).find((j) => JSON.stringify(j.payload).includes(rows[0].saga_id))!;
    return { exportId: rows[0].id, sagaId: rows[0].saga_id, jobId: job.id };
  }

  it("does not strand its record: a lost or failed job is driven again, a saga gone or finished without it gives it back", async () => {
    await runJobs(db, peers.services); // whatever earlier tests left queued
    const lost = await queued();
    await db.query("select graphile_worker.complete_jobs(array[$1::bigint])", [lost.jobId]); // its job deleted
    const failed = await queued();
    await db.query("select graphile_worker.permanently_fail_jobs(array[$1::bigint], 'worker gave up')", [failed.jobId]);
    const abandoned = await queued(); // its row finished without running its undo (marked failed by hand)
    await db.query("select graphile_worker.complete_jobs(array[$1::bigint])", [abandoned.jobId]);
    await db.query(
      "update gk_public.sagas set state = 'failed', failed_step = 'take', error = 'abandoned', finished_at = now() where id = $1",
      [abandoned.sagaId],
    );
    const gone = await queued(); // its row deleted (the record's saga_id set null)
    await db.query("select graphile_worker.complete_jobs(array[$1::bigint])", [gone.jobId]);
    await db.query("delete from gk_public.sagas where id = $1", [gone.sagaId]);
    const all = [lost, failed, abandoned, gone].map((q) => q.exportId);

    // Before the lease runs out nothing is started twice; the jobs that are left change nothing.
    await activation();
    await runJobs(db, peers.services);
    const waiting = await db.query(
      "select count(*)::int as n from gk_public.exports where id = any($1) and state = 'assigning' and saga_queued_until > now()",
      [all],
    );
    expect(waiting.rows[0].n).toBe(4);
    // They are listed in the bin, not yet overdue.
    const overdue = async () =>
      (await db.query("select overdue from gk_public.bin where kind = 'export' and ref = any($1)", [all])).rows.map((r) => r.overdue);
    expect(await overdue()).toEqual(Array(4).fill(false));

    // The lease runs out, and the sagas left have not moved (as bin_lease passing would): overdue.
    await db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second' where id = any($1)", [all]);
    await db.query("update gk_public.sagas set updated_at = now() - interval '1 hour' where id = any($1)", [[lost.sagaId, failed.sagaId]]);
    expect(await overdue()).toEqual(Array(4).fill(true));
    const s = await activation();
    expect({ released: s.overdue_released, requeued: s.overdue_requeued }).toEqual({ released: 2, requeued: 2 });
    await runJobs(db, peers.services);
    const { rows } = await db.query(
      "select id, state, saga_id, saga_queued_until from gk_public.exports where id = any($1) order by array_position($1, id)",
      [all],
    );
    expect(rows.map((r) => [r.state, r.saga_queued_until])).toEqual(Array(4).fill(["live", null]));
    // The lost and the failed job's sagas were driven again, the others replaced.
    expect(rows.map((r) => r.saga_id)).toEqual([
      lost.sagaId,
      failed.sagaId,
      expect.not.stringMatching(abandoned.sagaId),
      expect.any(String),
    ]);
    for (const r of rows) expect(await download(`${(await record(r.id)).url}`)).toBeInstanceOf(Buffer);
  });
});

describe("a queued saga whose steps no worker knows", () => {
  it("is enqueued again at most max_saga_requeues times, then failed (an item error of the activation) and its record given back and created", async () => {
    await runJobs(db, peers.services);
    const { images } = await publishImages(db, peers, team, 1);
    await coordinateOnce(db, peers.services);
    const { rows } = await db.query("select id, saga_id from gk_public.exports where resource_id = $1 and state <> 'deleted'", [
      images[0]!.id,
    ]);
    const [rec] = rows;
    // A saga of another release: no worker here drives its steps, so each job of it fails at once.
    await db.query("update gk_public.sagas set steps = '{take,place,attach,live}' where id = $1", [rec.saga_id]);
    const lapse = async (limits = {}) => {
      await clearJobs(db);
      await db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second' where id = $1", [rec.id]);
      return coordinateOnce(db, peers.services, { max_saga_requeues: 1, ...limits });
    };
    expect((await lapse()).overdue_requeued).toBe(1);
    await expect(lapse()).rejects.toThrow(/not driven after 1 re-enqueues/);
    expect((await db.query("select state, error from gk_public.sagas where id = $1", [rec.saga_id])).rows[0]).toMatchObject({
      state: "failed",
      error: expect.stringMatching(/no worker knows its steps \(take, place, attach, live\)/),
    });
    // The next activation starts a saga this release drives: the export goes live.
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    const after = (await db.query("select state, saga_id from gk_public.exports where id = $1", [rec.id])).rows[0];
    expect(after.state).toBe("live");
    expect(after.saga_id).not.toBe(rec.saga_id);
  });
});

describe("the coordinator's verify of live attachments", () => {
  it("is left to the activation that finishes the backlog when one is cut short by max_items", async () => {
    await publishImages(db, peers, team, 1);
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    const live = await db.query("select count(*)::int as n from gk_public.exports where state = 'live'");
    expect(live.rows[0].n).toBeGreaterThan(0);
    await publishImages(db, peers, team, 2);
    const cut = await coordinateOnce(db, peers.services, { max_items: 1 });
    expect({ settled: cut.settled, more: cut.more, verified: cut.verified }).toEqual({ settled: 1, more: true, verified: 0 });
    const rest = await coordinateOnce(db, peers.services, { max_items: 1_000 });
    expect({ settled: rest.settled, more: rest.more }).toEqual({ settled: 1, more: false });
    expect(rest.verified).toBeGreaterThan(0);
    await runJobs(db, peers.services);
  });

  it("is not run by a cut-short activation before any verify (a first launch): that only starts the clock", async () => {
    await publishImages(db, peers, team, 1);
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    // Never verified (a fresh install): the launch's first activation is cut short by max_items.
    await db.query("update gk_private.export_sweeps set last_verify_at = null");
    await publishImages(db, peers, team, 2);
    const cut = await coordinateOnce(db, peers.services, { max_items: 1, verify_every_seconds: 60 });
    expect({ more: cut.more, verified: cut.verified }).toEqual({ more: true, verified: 0 });
    expect((await db.query("select last_verify_at is not null as started from gk_private.export_sweeps")).rows[0].started).toBe(true);
    const rest = await coordinateOnce(db, peers.services, { max_items: 1_000 });
    expect(rest.more).toBe(false);
    expect(rest.verified).toBeGreaterThan(0);
    await runJobs(db, peers.services);
  });

  it("still runs at least every verify_every_seconds under a backlog that never ends (every activation cut short)", async () => {
    await publishImages(db, peers, team, 1);
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    const cutShort = async () => {
      await publishImages(db, peers, team, 2); // more than max_items arrives every time
      const s = await coordinateOnce(db, peers.services, { max_items: 1, verify_every_seconds: 60 });
      expect(s.more).toBe(true);
      return s.verified;
    };
    expect(await cutShort()).toBe(0); // verified by the activation before, within the interval
    // The interval passes with the backlog still there: the next cut-short activation verifies.
    await db.query("update gk_private.export_sweeps set last_verify_at = now() - interval '61 seconds'");
    expect(await cutShort()).toBeGreaterThan(0);
    expect(await cutShort()).toBe(0); // and not again until the interval has passed once more
    await coordinateOnce(db, peers.services, { max_items: 1_000 });
    await runJobs(db, peers.services);
  });
});
