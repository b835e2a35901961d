// The create and delete sagas against a real export node: every action run twice; a failure
// injected after each step unwinds to the start state (the record as it was, and for create
// nothing left on the node); a duplicate start of the same generation unwinds at its first step
// and changes nothing; no node to place on unwinds to requested.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExport } from "../../src/exports/sagas/create.ts";
import { deleteExport } from "../../src/exports/sagas/delete.ts";
import { PeerClient } from "../../src/peers/client.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertExports, insertTeam } from "../helpers/fixtures/index.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { actionFailureCanUnwind, actionsSucceedIdempotently, runSagaInProcess, sagaEvents } from "../helpers/saga.ts";
import { type NodeProcess, publishImages, startNode } from "./helpers/nodes.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "exporters" })).id;
let peers: Peers;
let node: NodeProcess;
let nodeId: string;

beforeAll(async () => {
  peers = await setupPeers(db, "exports");
  node = await startNode(peers, "n1");
  nodeId = (await db.query("select id from gk_public.export_nodes where worker_id = $1", [node.workerId])).rows[0].id;
});

afterAll(async () => {
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
        failed_step: "place",
        error: "error: no in-service export node with a fresh heartbeat",
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
