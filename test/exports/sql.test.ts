// The export model in SQL, without nodes: one non-deleted record per resource (with the clear
// error before the index), the changeset's three parts (never a deleted record), marking and the
// bypass counted per call, the generation-guarded takes, a pruned worker expunging its node, the
// bin kind, the indexes behind the changeset, and GraphQL (nodes, records, expunge).
import { beforeEach, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertExportNode, insertExports, insertImages, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { clearJobs, jobs } from "../helpers/jobs.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "exporters" })).id;
const api = await httpGraphql(db);

async function sqlError(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message };
  }
  throw new Error("expected the statement to fail");
}

async function changeset(max = 1000) {
  const { rows } = await db.query(
    "select action, export_id, resource_id from gk_private.exports_changeset($1) order by action, resource_id",
    [max],
  );
  return rows;
}

/** A saga row for transitions driven by hand (exports.saga_id references it). */
async function sagaRow(): Promise<string> {
  return (await db.query("insert into gk_public.sagas (name, steps, params) values ('exports__create', '{take}', '{}') returning id"))
    .rows[0].id;
}

const one = async (sql: string, params: unknown[] = []) => (await db.query(sql, params)).rows[0];

beforeEach(async () => {
  await db.query("delete from gk_public.exports");
  await db.query("delete from gk_public.export_nodes");
  await db.query("delete from gk_public.images");
  await clearJobs(db);
});

describe("records", () => {
  it("one non-deleted record per resource: request_export says so clearly, the index backs it, deleted records are kept", async () => {
    const [img] = await insertImages(db, { team, count: 1 });
    const first = await one("select id, state from gk_public.request_export('image', $1)", [img!.id]);
    expect(first.state).toBe("requested");
    const again = await sqlError(db.query("select gk_public.request_export('image', $1)", [img!.id]));
    expect(again).toEqual({ code: "23505", message: `image ${img!.id} already has export ${first.id} (requested)` });
    const raw = await sqlError(db.query("insert into gk_public.exports (resource_type, resource_id) values ('image', $1)", [img!.id]));
    expect(raw.message).toMatch(/exports_one_per_resource/);
    const unknown = await sqlError(db.query("select gk_public.request_export('image', gen_random_uuid())"));
    expect(unknown.code).toBe("P0002");
    // Deleted, it stays as history and the resource may have a new record.
    await db.query("update gk_public.exports set state = 'deleted', deleted_at = now() where id = $1", [first.id]);
    const second = await one("select id from gk_public.request_export('image', $1)", [img!.id]);
    expect(second.id).not.toBe(first.id);
    expect((await one("select count(*)::int as n from gk_public.exports")).n).toBe(2);
    // It activated the coordinator.
    expect((await jobs(db, "exports__coordinate")).length).toBe(1);
  });

  it("constraints: a live record has its node and attachment, a locked state has its saga, a node with records cannot be deleted", async () => {
    const node = await insertExportNode(db);
    const [img] = await insertImages(db, { team, count: 1 });
    const [rec] = await insertExports(db, { images: [img!], state: "live", node });
    expect((await sqlError(db.query("update gk_public.exports set node_id = null where id = $1", [rec!.id]))).message).toMatch(
      /exports_live_attached/,
    );
    expect((await sqlError(db.query("update gk_public.exports set state = 'assigning' where id = $1", [rec!.id]))).message).toMatch(
      /exports_locked/,
    );
    expect((await sqlError(db.query("delete from gk_public.export_nodes where id = $1", [node.id]))).code).toBe("23503");
  });

  it("pruning a node's worker expunges the node and keeps it", async () => {
    const node = await insertExportNode(db);
    await db.query("delete from gk_public.workers where id = $1", [node.worker_id]);
    expect(
      await one("select state, worker_id, expunged_at is not null as at from gk_public.export_nodes where id = $1", [node.id]),
    ).toEqual({
      state: "expunged",
      worker_id: null,
      at: true,
    });
  });
});

describe("the changeset", () => {
  it("requests resources without a record, creates requested records, deletes marked live ones, never returns deleted records", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 5 });
    const [requested] = await insertExports(db, { images: [imgs[1]!] });
    const [live] = await insertExports(db, { images: [imgs[2]!], state: "live", node });
    const [doomed] = await insertExports(db, { images: [imgs[3]!], state: "live", node, doomed: true });
    const [old] = await insertExports(db, { images: [imgs[4]!], state: "deleted", doomed: true });
    await insertExports(db, { images: [imgs[4]!], state: "live", node });
    const cs = await changeset();
    expect(cs).toEqual(
      [
        { action: "create", export_id: requested!.id, resource_id: imgs[1]!.id },
        { action: "delete", export_id: doomed!.id, resource_id: imgs[3]!.id },
        { action: "request", export_id: null, resource_id: imgs[0]!.id },
      ].sort((a, b) => a.action.localeCompare(b.action)),
    );
    expect(cs.map((r) => r.export_id)).not.toContain(old!.id);
    expect(cs.map((r) => r.export_id)).not.toContain(live!.id);
    // Limited per part.
    await insertImages(db, { team, count: 3 });
    expect((await changeset(2)).filter((r) => r.action === "request")).toHaveLength(2);
  });

  it("marks records of deleted resources and expunged nodes once (counted per call); requested ones go straight to deleted", async () => {
    const [a, b] = await Promise.all([insertExportNode(db), insertExportNode(db)]);
    const imgs = await insertImages(db, { team, count: 4 });
    const [onA] = await insertExports(db, { images: [imgs[0]!], state: "live", node: a });
    const [onB] = await insertExports(db, { images: [imgs[1]!], state: "live", node: b });
    const [req] = await insertExports(db, { images: [imgs[2]!] });
    await insertExports(db, { images: [imgs[3]!], state: "deleted" });
    await db.query("delete from gk_public.images where id = any($1)", [[imgs[1]!.id, imgs[2]!.id, imgs[3]!.id]]);
    await db.query("select gk_public.expunge_export_node($1)", [a.id]);
    expect((await one("select gk_private.exports_mark_for_deletion() as n")).n).toBe(3);
    expect((await one("select gk_private.exports_mark_for_deletion() as n")).n).toBe(0);
    expect((await one("select gk_private.exports_bypass(100) as ids")).ids).toEqual([req!.id]);
    expect((await one("select gk_private.exports_bypass(100) as ids")).ids).toEqual([]);
    // onA's image still exists: it is requested again once onA is deleted, not before.
    const cs = await changeset();
    expect(cs.map((r) => `${r.action} ${r.export_id}`).sort()).toEqual([`delete ${onA!.id}`, `delete ${onB!.id}`].sort());
  });

  it("is backed by indexes", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 3000 });
    await insertExports(db, { images: imgs.slice(0, 2950), state: "live", node });
    await insertExports(db, { images: imgs.slice(2950, 2980) });
    // History: records deleted before (re-homed, re-created) stay in the table.
    for (let i = 0; i < 3; i++) await insertExports(db, { images: imgs, state: "deleted" });
    await db.query("vacuum analyze gk_public.images");
    await db.query("vacuum analyze gk_public.exports");
    const plan = async (sql: string) =>
      (await db.query(`explain (format json) ${sql}`)).rows[0]["QUERY PLAN"][0].Plan as unknown as Record<string, unknown>;
    const indexes = (p: unknown): string[] => {
      const o = p as { "Index Name"?: string; Plans?: unknown[] };
      return [...(o["Index Name"] ? [o["Index Name"]] : []), ...(o.Plans ?? []).flatMap(indexes)];
    };
    const seqScans = (p: unknown): string[] => {
      const o = p as { "Node Type"?: string; "Relation Name"?: string; Plans?: unknown[] };
      return [...(o["Node Type"] === "Seq Scan" ? [o["Relation Name"]!] : []), ...(o.Plans ?? []).flatMap(seqScans)];
    };
    // The three parts as the function runs them (sql/700_exports.sql).
    const body = (await one("select prosrc from pg_proc where proname = 'exports_changeset'")).prosrc.replaceAll("max_items", "100");
    const used = indexes(await plan(body));
    // Every image is looked at (that is the request part), but never by reading the exports table.
    expect(seqScans(await plan(body))).not.toContain("exports");
    expect(used).toContain("images_pkey");
    expect(used).toContain("exports_requested_idx");
    expect(used).toContain("exports_delete_due_idx");
  });
});

describe("guarded transitions", () => {
  it("a saga takes a requested row only below its generation; a second saga of the same generation gets nothing", async () => {
    const [img] = await insertImages(db, { team, count: 1 });
    const [rec] = await insertExports(db, { images: [img!] });
    const s1 = await sagaRow();
    const s2 = await sagaRow();
    const take = (saga: string, gen: number) =>
      db.query("select id, generation from gk_private.exports_take_for_create($1, $2, $3)", [rec!.id, saga, gen]);
    expect((await take(s1, 1)).rows).toEqual([{ id: rec!.id, generation: "1" }]);
    expect((await take(s1, 1)).rows).toHaveLength(1); // the same saga again: idempotent
    expect((await take(s2, 1)).rows).toHaveLength(0);
    await db.query("select gk_private.exports_release_create($1, $2)", [rec!.id, s2]); // not its row: nothing
    expect((await one("select state from gk_public.exports where id = $1", [rec!.id])).state).toBe("assigning");
    await db.query("select gk_private.exports_release_create($1, $2)", [rec!.id, s1]);
    expect((await take(s2, 1)).rows).toHaveLength(0); // a stale duplicate stays out after the undo
    expect((await take(s2, 2)).rows).toHaveLength(1);
  });

  it("placing needs an in-service node with a fresh heartbeat", async () => {
    await insertExportNode(db, { expiresIn: "-1 minute" });
    await insertExportNode(db, { state: "expunged" });
    const [img] = await insertImages(db, { team, count: 1 });
    const [rec] = await insertExports(db, { images: [img!] });
    const saga = await sagaRow();
    await db.query("select gk_private.exports_take_for_create($1, $2, 1)", [rec!.id, saga]);
    const e = await sqlError(db.query("select * from gk_private.exports_place($1, $2)", [rec!.id, saga]));
    expect(e).toEqual({ code: "55000", message: "no in-service export node with a fresh heartbeat" });
    const fresh = await insertExportNode(db);
    const placed = await one("select node_id, attachment_id from gk_private.exports_place($1, $2)", [rec!.id, saga]);
    expect(placed).toEqual({ node_id: fresh.id, attachment_id: saga });
  });
});

describe("bin kind export", () => {
  it("lists records not settled (requested, in progress, live but marked), not settled live or deleted ones", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 5 });
    const [req] = await insertExports(db, { images: [imgs[0]!] });
    const [asg] = await insertExports(db, { images: [imgs[1]!], state: "assigning", node });
    await insertExports(db, { images: [imgs[2]!], state: "live", node });
    const [doomed] = await insertExports(db, { images: [imgs[3]!], state: "live", node, doomed: true });
    await insertExports(db, { images: [imgs[4]!], state: "deleted" });
    const { rows } = await db.query("select ref, team_id from gk_public.bin where kind = 'export' order by ref");
    expect(rows).toEqual([req!, asg!, doomed!].map((r) => ({ ref: r.id, team_id: team })).sort((a, b) => a.ref.localeCompare(b.ref)));
    expect((await one("select gk_public.retry_bin_item('export', $1) as ok", [req!.id])).ok).toBe(true);
    expect((await sqlError(db.query("select gk_public.retry_bin_item('export', 'nope')"))).code).toBe("22023");
  });
});

describe("GraphQL", () => {
  it("lists nodes and records; an admin expunges a node (idempotent, unknown id refused); a viewer cannot", async () => {
    const node = await insertExportNode(db);
    const [img] = await insertImages(db, { team, count: 1 });
    await insertExports(db, { images: [img!], state: "live", node });
    const list = await api.exec(
      "viewer",
      "{ allExportNodes { nodes { rowId state address } } allExports { nodes { resourceType resourceId state nodeId } } }",
    );
    expect(list.errors).toBeUndefined();
    expect(list.data.allExportNodes.nodes).toEqual([{ rowId: node.id, state: "IN_SERVICE".toLowerCase(), address: node.address }]);
    expect(list.data.allExports.nodes).toEqual([{ resourceType: "image", resourceId: img!.id, state: "live", nodeId: node.id }]);
    const EXPUNGE = "mutation($id: UUID!) { expungeExportNode(input: { id: $id }) { result { rowId state } } }";
    expect((await api.exec("viewer", EXPUNGE, { id: node.id })).errors?.[0]?.message).toMatch(/permission denied/);
    const done = await api.exec("admin", EXPUNGE, { id: node.id });
    expect(done.data.expungeExportNode.result).toEqual({ rowId: node.id, state: "expunged" });
    expect((await api.exec("admin", EXPUNGE, { id: node.id })).data.expungeExportNode.result.state).toBe("expunged");
    const missing = await api.exec("admin", EXPUNGE, { id: crypto.randomUUID() });
    expect(missing.errors?.[0]?.message).toMatch(/export node .* not found/);
  });
});
