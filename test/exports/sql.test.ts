// The export model in SQL, without nodes: one non-deleted record per resource (with the clear
// error before the index), the changed resources recorded by triggers and settled (never lost,
// shared by two coordinators, the full sweep as safety net), the changeset's parts (never a
// deleted record), marking and the bypass counted per call, the generation-guarded takes, a
// pruned worker expunging its node, the bin kind, the indexes behind the changeset, and GraphQL
// (nodes, records, expunge).
import fs from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertExportNode, insertExports, insertImages, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { clearJobs, jobs } from "../helpers/jobs.ts";
import { createExport, TAKE_SQL } from "../../src/exports/sagas/create.ts";

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
  await db.query("delete from gk_private.export_pending");
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

async function settle(max = 1000): Promise<{ taken: number; requested: number; marked: number }> {
  return one("select taken, requested, marked from gk_private.exports_settle_pending($1)", [max]);
}

const pending = async () =>
  (await db.query("select resource_id from gk_private.export_pending order by id")).rows.map((r) => r.resource_id as string);

describe("the changeset", () => {
  it("settling what changed requests resources without a record; the changeset creates requested records, deletes marked live ones, never returns deleted records", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 5 });
    const [requested] = await insertExports(db, { images: [imgs[1]!] });
    const [live] = await insertExports(db, { images: [imgs[2]!], state: "live", node });
    const [doomed] = await insertExports(db, { images: [imgs[3]!], state: "live", node, doomed: true });
    const [old] = await insertExports(db, { images: [imgs[4]!], state: "deleted", doomed: true });
    await insertExports(db, { images: [imgs[4]!], state: "live", node });
    // The insert of the images recorded them; only imgs[0] has no non-deleted record.
    expect(await pending()).toEqual(imgs.map((i) => i.id));
    expect(await settle()).toEqual({ taken: 5, requested: 1, marked: 0 });
    expect(await pending()).toEqual([]);
    expect(await settle()).toEqual({ taken: 0, requested: 0, marked: 0 });
    const fresh = await one("select id from gk_public.exports where resource_id = $1 and state = 'requested'", [imgs[0]!.id]);
    const cs = await changeset();
    expect(cs).toEqual([
      ...[
        { action: "create", export_id: requested!.id, resource_id: imgs[1]!.id },
        { action: "create", export_id: fresh.id, resource_id: imgs[0]!.id },
      ].sort((a, b) => a.resource_id.localeCompare(b.resource_id)),
      { action: "delete", export_id: doomed!.id, resource_id: imgs[3]!.id },
    ]);
    expect(cs.map((r) => r.export_id)).not.toContain(old!.id);
    expect(cs.map((r) => r.export_id)).not.toContain(live!.id);
    // Limited per call and per part.
    await insertImages(db, { team, count: 3 });
    expect(await settle(2)).toMatchObject({ taken: 2, requested: 2 });
    expect((await changeset(2)).filter((r) => r.action === "create")).toHaveLength(2);
    expect(await settle(2)).toMatchObject({ taken: 1, requested: 1 });
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
    expect(await settle()).toEqual({ taken: 7, requested: 0, marked: 2 });
    expect(await settle()).toEqual({ taken: 0, requested: 0, marked: 0 });
    expect((await one("select gk_private.exports_mark_for_deletion() as n")).n).toBe(1);
    expect((await one("select gk_private.exports_mark_for_deletion() as n")).n).toBe(0);
    expect((await one("select gk_private.exports_bypass(100) as ids")).ids).toEqual([req!.id]);
    expect((await one("select gk_private.exports_bypass(100) as ids")).ids).toEqual([]);
    // The bypassed record's resource was recorded again; it is gone, so settling it does nothing.
    expect(await settle()).toEqual({ taken: 1, requested: 0, marked: 0 });
    // onA's image still exists: it is requested again once onA is deleted, not before.
    const cs = await changeset();
    expect(cs.map((r) => `${r.action} ${r.export_id}`).sort()).toEqual([`delete ${onA!.id}`, `delete ${onB!.id}`].sort());
    await db.query("update gk_public.exports set state = 'deleted', deleted_at = now(), delete_requested_at = now() where id = $1", [
      onA!.id,
    ]);
    expect(await pending()).toEqual([imgs[0]!.id]);
    expect(await settle()).toEqual({ taken: 1, requested: 1, marked: 0 });
  });

  it("a record whose saga is queued is left out of the changeset until that saga takes it or gives it back", async () => {
    const [img] = await insertImages(db, { team, count: 1 });
    const [rec] = await insertExports(db, { images: [img!] });
    const saga = await sagaRow();
    await db.query("select gk_private.exports_sagas_started(array[$1::uuid], array[$2::uuid])", [rec!.id, saga]);
    expect(await changeset()).toEqual([]);
    // Its saga failed before taking the record (no node, or another saga had it): its undo of take.
    await db.query("select gk_private.exports_release_create($1, $2)", [rec!.id, saga]);
    expect(await changeset()).toEqual([]); // still running
    await db.query("update gk_public.sagas set state = 'failed', failed_step = 'take', error = 'x', finished_at = now() where id = $1", [
      saga,
    ]);
    expect((await changeset()).map((r) => r.export_id)).toEqual([rec!.id]);
  });

  it("a queued record whose lease ran out: given back when its saga is finished or gone, its saga's job enqueued again when lost, left while workers are behind", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 3 });
    const [rec] = await insertExports(db, { images: [imgs[0]!] });
    const [doomed] = await insertExports(db, { images: [imgs[1]!], state: "live", node });
    const [other] = await insertExports(db, { images: [imgs[2]!] });
    await db.query("update gk_public.exports set delete_requested_at = now() where id = $1", [doomed!.id]);
    const create = await sagaRow();
    const del = (await one("insert into gk_public.sagas (name, steps, params) values ('exports__delete', '{take}', '{}') returning id")).id;
    await db.query("select gk_private.exports_sagas_started(array[$1, $2]::uuid[], array[$3, $4]::uuid[])", [
      rec!.id,
      doomed!.id,
      create,
      del,
    ]);
    const overdue = () => one("select * from gk_private.exports_queued_overdue(10)");
    const expire = () =>
      db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second' where saga_queued_until is not null");
    expect(await overdue()).toMatchObject({ released: 0, requeued: 0 }); // within the lease
    expect((await changeset()).map((r) => r.export_id)).toEqual([other!.id]);

    // Workers are behind (a job of the task is due): the lease is renewed, nothing enqueued.
    await db.query("select gk_private.enqueue('exports__create', '{}'::jsonb)");
    await db.query("select gk_private.enqueue('exports__delete', '{}'::jsonb)");
    await expire();
    expect(await overdue()).toMatchObject({ released: 0, requeued: 0 });
    expect((await one("select count(*)::int as n from gk_public.exports where saga_queued_until > now()")).n).toBe(2);

    // No backlog: each saga's job is enqueued again on its own, the lease renewed.
    await clearJobs(db);
    await expire();
    expect(await overdue()).toMatchObject({ released: 0, requeued: 2 });
    expect((await jobs(db)).map((j) => j.key).sort()).toEqual([`saga:${create}`, `saga:${del}`].sort());
    expect((await changeset()).map((r) => r.export_id)).toEqual([other!.id]);

    // The create saga finished without giving the record back, the delete saga's row is gone.
    await db.query("update gk_public.sagas set state = 'failed', failed_step = 'take', error = 'x', finished_at = now() where id = $1", [
      create,
    ]);
    await db.query("delete from gk_public.sagas where id = $1", [del]);
    await expire();
    expect(await overdue()).toMatchObject({ released: 2, requeued: 0 });
    expect((await changeset()).map((r) => r.export_id).sort()).toEqual([rec!.id, doomed!.id, other!.id].sort());
    expect(await overdue()).toMatchObject({ released: 0, requeued: 0 });
  });

  it("a queued saga no worker drives is re-enqueued a bounded number of times, then failed with a clear error and its record given back", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 2 });
    const [rec] = await insertExports(db, { images: [imgs[0]!] });
    const [doomed] = await insertExports(db, { images: [imgs[1]!], state: "live", node });
    await db.query("update gk_public.exports set delete_requested_at = now() where id = $1", [doomed!.id]);
    // Steps no worker of this release knows (a saga of another release).
    const create = (
      await one(
        "insert into gk_public.sagas (name, steps, params) values ('exports__create', '{take,place,attach,live}', '{}') returning id",
      )
    ).id;
    const del = (await one("insert into gk_public.sagas (name, steps, params) values ('exports__delete', '{take}', '{}') returning id")).id;
    await db.query("select gk_private.exports_sagas_started(array[$1, $2]::uuid[], array[$3, $4]::uuid[])", [
      rec!.id,
      doomed!.id,
      create,
      del,
    ]);
    const lapse = async () => {
      await clearJobs(db); // each job enqueued fails at once (no worker knows the steps): none waits
      await db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second' where saga_queued_until is not null");
      return one("select * from gk_private.exports_queued_overdue(10, 2)");
    };
    expect(await lapse()).toMatchObject({ released: 0, requeued: 2, failed: [] });
    expect(await lapse()).toMatchObject({ released: 0, requeued: 2, failed: [] });
    const third = await lapse();
    expect(third).toMatchObject({ released: 2, requeued: 0 });
    expect([...third.failed].sort()).toEqual([create, del].sort());
    expect(await jobs(db)).toEqual([]);
    const { rows } = await db.query(
      "select id, state, failed_step, error, finished_at is not null as finished from gk_public.sagas where id = any($1)",
      [[create, del]],
    );
    for (const r of rows) {
      expect(r).toMatchObject({ state: "failed", failed_step: "take", finished: true });
      expect(r.error).toMatch(/not driven after 2 re-enqueues.*no worker knows its steps/);
    }
    // Given back: the changeset starts new sagas for both, and the bin shows the failed saga's error.
    expect((await changeset()).map((c) => c.export_id).sort()).toEqual([rec!.id, doomed!.id].sort());
    const bin = await db.query("select ref, last_error from gk_public.bin where kind = 'export' and ref = $1", [rec!.id]);
    expect(bin.rows[0].last_error).toMatch(/not driven after 2 re-enqueues/);
    // A new lease starts the count again.
    const again = await sagaRow();
    await db.query("select gk_private.exports_sagas_started(array[$1]::uuid[], array[$2]::uuid[])", [rec!.id, again]);
    expect(await lapse()).toMatchObject({ requeued: 1, failed: [] });
  });

  it("a failed settle loses nothing; a change committed during one is settled by the next; two at once share the queue", async () => {
    const [x] = await insertImages(db, { team, count: 1 });
    const c1 = await db.pool.connect();
    const c2 = await db.pool.connect();
    try {
      await c1.query("begin");
      expect((await c1.query("select taken, requested, marked from gk_private.exports_settle_pending(100)")).rows[0]).toEqual({
        taken: 1,
        requested: 1,
        marked: 0,
      });
      // A second settle meanwhile skips the taken entry instead of waiting for it.
      expect((await c2.query("select taken, requested, marked from gk_private.exports_settle_pending(100)")).rows[0]).toEqual({
        taken: 0,
        requested: 0,
        marked: 0,
      });
      await c1.query("rollback");
      expect(await pending()).toEqual([x!.id]);
      expect((await one("select count(*)::int as n from gk_public.exports")).n).toBe(0);

      await c1.query("begin");
      expect((await c1.query("select * from gk_private.exports_settle_pending(100)")).rows[0]).toMatchObject({ requested: 1 });
      // Committed while c1 has not: x deleted. c1's statement did not see it; the next settle does.
      await c2.query("delete from gk_public.images where id = $1", [x!.id]);
      await c1.query("commit");
    } finally {
      c1.release();
      c2.release();
    }
    expect(await pending()).toEqual([x!.id]);
    expect(await settle()).toEqual({ taken: 1, requested: 0, marked: 1 });
  });

  it("images inserted and deleted as an admin (GraphQL's role) are recorded", async () => {
    const c = await db.pool.connect();
    try {
      await c.query("begin");
      await c.query("set local role gk_admin");
      const [img] = await insertImages(c, { team, count: 1 });
      await c.query("delete from gk_public.images where id = $1", [img!.id]);
      await c.query("commit");
      expect(await pending()).toEqual([img!.id, img!.id]);
    } finally {
      await c.query("rollback").catch(() => {});
      c.release();
    }
  });

  it("settling with the create saga writes each new record queued with its saga, one job per batch; the changeset leaves them out", async () => {
    const imgs = await insertImages(db, { team, count: 3 });
    const r = await one("select * from gk_private.exports_settle_pending(100, $1, $2, 2)", [
      createExport.name,
      createExport.steps.map((s) => s.name),
    ]);
    expect({ ...r, started: r.started.length }).toEqual({ taken: 3, requested: 3, marked: 0, started: 3 });
    const { rows } = await db.query(
      `select e.id, e.state, e.saga_queued_until > now() as queued, s.name, s.steps, s.params, s.state as saga_state
         from gk_public.exports e join gk_public.sagas s on s.id = e.saga_id where e.resource_id = any($1)`,
      [imgs.map((i) => i.id)],
    );
    expect(rows.map((x) => x.id).sort()).toEqual([...r.started].sort());
    for (const x of rows)
      expect(x).toMatchObject({
        state: "requested",
        queued: true,
        name: "exports__create",
        steps: ["take", "attach", "live"],
        params: { export_id: x.id, generation: 1 },
        saga_state: "running",
      });
    const batches = (await jobs(db, "exports__create")).map((j) => (j.payload as { saga_ids: string[] }).saga_ids);
    expect(batches.map((b) => b.length).sort()).toEqual([1, 2]);
    const sagaIds = (await db.query("select saga_id from gk_public.exports where id = any($1)", [r.started])).rows.map((x) => x.saga_id);
    expect(batches.flat().sort()).toEqual(sagaIds.sort());
    const changes = await db.query("select * from gk_private.exports_changeset(100) where export_id = any($1)", [r.started]);
    expect(changes.rows).toEqual([]);
  });

  it("settling with the create saga and an in-service node writes each new record already taken and placed, so the take writes nothing; overdue, a finished saga's record goes back to requested", async () => {
    await insertExportNode(db, { expiresIn: "-1 minute" });
    await insertExportNode(db, { state: "expunged" });
    const [x, y] = [await insertExportNode(db), await insertExportNode(db)];
    const imgs = await insertImages(db, { team, count: 4 });
    const r = await one("select * from gk_private.exports_settle_pending(100, $1, $2, 4)", [
      createExport.name,
      createExport.steps.map((s) => s.name),
    ]);
    expect({ ...r, started: r.started.length }).toEqual({ taken: 4, requested: 4, marked: 0, started: 4 });
    const rows = async () =>
      (
        await db.query(
          `select e.id, e.state, e.node_id, e.attachment_id, e.operating_saga_id, e.saga_id, e.generation, e.attempts,
                  e.saga_queued_until > now() as queued, e.xmin::text as version, s.params
             from gk_public.exports e join gk_public.sagas s on s.id = e.saga_id where e.resource_id = any($1) order by e.id`,
          [imgs.map((i) => i.id)],
        )
      ).rows;
    const settled = await rows();
    for (const e of settled) {
      expect(e).toMatchObject({
        state: "assigning",
        attachment_id: e.saga_id,
        operating_saga_id: e.saga_id,
        generation: "1",
        queued: true,
      });
      expect(e.params).toEqual({ export_id: e.id, generation: 1 });
    }
    // Round the in-service nodes with a fresh heartbeat.
    expect(settled.filter((e) => e.node_id === x.id)).toHaveLength(2);
    expect(settled.filter((e) => e.node_id === y.id)).toHaveLength(2);
    // The saga's take finds its record taken: the same node, and no new row version.
    const { rows: taken } = await db.query(
      "select export_id, node_id, attachment_id from gk_private.exports_take_for_create_batch($1::uuid[], $2::uuid[], array_fill(1::bigint, array[cardinality($1::uuid[])]))",
      [settled.map((e) => e.id), settled.map((e) => e.saga_id)],
    );
    expect(taken).toEqual(settled.map((e) => ({ export_id: e.id, node_id: e.node_id, attachment_id: e.saga_id })));
    expect((await rows()).map((e) => e.version)).toEqual(settled.map((e) => e.version));
    expect(await changeset()).toEqual([]);
    // A duplicate start of the same generation takes nothing.
    const dup = await sagaRow();
    expect(
      (
        await db.query(
          "select export_id from gk_private.exports_take_for_create_batch(array[$1::uuid], array[$2::uuid], array[1::bigint])",
          [settled[0]!.id, dup],
        )
      ).rows,
    ).toEqual([{ export_id: null }]);
    // Its saga finished without its undo (abandoned) and another's row is gone: once the lease ran
    // out, both records go back to requested, unplaced, and the changeset creates them again.
    await db.query("update gk_public.sagas set state = 'failed', failed_step = 'take', error = 'x', finished_at = now() where id = $1", [
      settled[0]!.saga_id,
    ]);
    await db.query("delete from gk_public.sagas where id = $1", [settled[1]!.saga_id]);
    await clearJobs(db);
    await db.query("update gk_public.exports set saga_queued_until = now() - interval '1 second'");
    expect(await one("select * from gk_private.exports_queued_overdue(10)")).toMatchObject({ released: 2, requeued: 2 });
    const after = await rows();
    expect(after.filter((e) => e.state === "requested").map((e) => e.id)).toEqual([settled[0]!.id]);
    expect(
      await one("select state, node_id, attachment_id, operating_saga_id from gk_public.exports where id = $1", [settled[1]!.id]),
    ).toEqual({ state: "requested", node_id: null, attachment_id: null, operating_saga_id: null });
    expect((await changeset()).map((c) => c.export_id).sort()).toEqual([settled[0]!.id, settled[1]!.id].sort());
  });

  it("the safety net: the full sweep finds what a lost entry missed, when due, and goes on while it hits its limit", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 3 });
    const [rec] = await insertExports(db, { images: [imgs[2]!], state: "live", node });
    await db.query("delete from gk_public.images where id = $1", [imgs[2]!.id]);
    // Every entry lost: settling finds nothing.
    await db.query("delete from gk_private.export_pending");
    expect(await settle()).toEqual({ taken: 0, requested: 0, marked: 0 });
    const sweep = async (max: number) => (await one("select gk_private.exports_full_sweep($1, interval '1 hour') as n", [max])).n;
    await db.query("update gk_private.export_sweeps set last_full_at = now() - interval '59 minutes'");
    expect(await sweep(100)).toBeNull(); // not due
    await db.query("update gk_private.export_sweeps set last_full_at = null");
    expect(await sweep(1)).toBe(2); // one of each part: at the limit, so still due
    expect(await sweep(1)).toBe(1); // what has an entry is not recorded again: only the other image
    expect(await sweep(100)).toBe(0); // everything it finds has its entry: done
    expect(await sweep(100)).toBeNull();
    expect(await settle()).toEqual({ taken: 3, requested: 2, marked: 1 });
    expect((await one("select delete_requested_at is not null as marked from gk_public.exports where id = $1", [rec!.id])).marked).toBe(
      true,
    );
  });

  it("is backed by indexes", async () => {
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 3000 });
    await insertExports(db, { images: imgs.slice(0, 2950), state: "live", node });
    const requested = await insertExports(db, { images: imgs.slice(2950, 2980) });
    await db.query("update gk_public.exports set saga_queued_until = now() + interval '1 minute' where id = any($1)", [
      requested.slice(0, 10).map((r) => r.id),
    ]);
    // History: records deleted before (re-homed, re-created) stay in the table.
    for (let i = 0; i < 3; i++) await insertExports(db, { images: imgs, state: "deleted" });
    // 1% changed: a few entries pending among many images.
    await db.query("delete from gk_private.export_pending where resource_id <> all($1)", [imgs.slice(2970).map((i) => i.id)]);
    await db.query("vacuum analyze gk_public.images");
    await db.query("vacuum analyze gk_public.exports");
    await db.query("vacuum analyze gk_private.export_pending");
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
    const body = async (fn: string) =>
      (await one("select prosrc from pg_proc where proname = $1", [fn])).prosrc.replaceAll("max_items", "100");
    // The changeset's two parts as the function runs them (sql/700_exports.sql): their partial indexes.
    const changesetPlan = await plan(await body("exports_changeset"));
    expect(seqScans(changesetPlan)).toEqual([]);
    expect(indexes(changesetPlan)).toContain("exports_requested_idx");
    expect(indexes(changesetPlan)).toContain("exports_delete_due_idx");
    // Settling reads the pending entries, and images and exports only by key (sql/720).
    const settlePlan = await plan(
      (await body("exports_settle_pending"))
        .replaceAll("saga_name", "'exports__create'")
        .replaceAll("saga_steps", "array['take', 'attach', 'live']")
        .replaceAll("batch_size", "25"),
    );
    expect(seqScans(settlePlan).filter((r) => r !== "export_pending")).toEqual([]);
    expect(indexes(settlePlan)).toContain("images_pkey");
    expect(indexes(settlePlan)).toContain("exports_one_per_resource");
    // As the SQL function plans its statement: max_items a parameter (a generic plan, where
    // LIMIT is estimated at a tenth of the queue), here a queue of every image. Still nothing
    // read whole: as joins, that plan hashed the queue, every image and every record per round.
    await db.query("insert into gk_private.export_pending (resource_type, resource_id) select 'image', id from gk_public.images");
    await db.query("vacuum analyze gk_private.export_pending");
    const genericPlan = async (sql: string, types: string, args: string) => {
      const c = await db.pool.connect();
      try {
        await c.query("set plan_cache_mode = force_generic_plan");
        await c.query(`prepare q(${types}) as ${sql}`);
        return (await c.query(`explain (format json) execute q(${args})`)).rows[0]["QUERY PLAN"][0].Plan as unknown;
      } finally {
        await c.query("deallocate all; reset plan_cache_mode");
        c.release();
      }
    };
    const genericSettle = await genericPlan(
      (await one("select prosrc from pg_proc where proname = 'exports_settle_pending'")).prosrc
        .replaceAll("max_items", "$1")
        .replaceAll("saga_name", "'exports__create'")
        .replaceAll("saga_steps", "array['take', 'attach', 'live']")
        .replaceAll("batch_size", "25"),
      "int",
      "250",
    );
    expect(seqScans(genericSettle)).toEqual([]);
    // A create batch's take with its images' blobs (src/exports/sagas/create.ts): by key too.
    const takePlan = await genericPlan(TAKE_SQL, "uuid[], uuid[], bigint[]", "'{}', '{}', '{}'");
    expect(seqScans(takePlan)).toEqual([]);
    expect(indexes(takePlan)).toContain("images_pkey");
    // Queued records whose lease ran out are found through the lease's own index.
    const overduePlan = await plan((await body("exports_queued_overdue")).replaceAll("max_requeues", "5"));
    expect(seqScans(overduePlan).filter((r) => r === "exports")).toEqual([]);
    expect(indexes(overduePlan)).toContain("exports_queued_until_idx");
    // The sweep of attachments no record holds: a page of a node's ids, one probe each of the
    // attachment index (sql/740), never a scan of the records (history included). Planned as the
    // function is, with its arguments as parameters (a generic plan): with constants the planner
    // hashes this one node's records, but the function's own plan re-read them for every id.
    const page = (await db.query("select attachment_id from gk_public.exports where state = 'live' limit 1000")).rows.map(
      (r) => r.attachment_id,
    );
    const c = await db.pool.connect();
    let sweepPlan: unknown;
    try {
      await c.query("set plan_cache_mode = force_generic_plan");
      await c.query(
        `prepare sweep_page(uuid, uuid[]) as ${(await body("exports_unreferenced_attachments"))
          .replaceAll("exports_unreferenced_attachments.node_id", "$1")
          .replaceAll("unnest(attachment_ids)", "unnest($2)")}`,
      );
      const args = `'${node.id}', array['${page.join("','")}']::uuid[]`;
      sweepPlan = (await c.query(`explain (format json) execute sweep_page(${args})`)).rows[0]["QUERY PLAN"][0].Plan;
    } finally {
      await c.query("deallocate all; reset plan_cache_mode").catch(() => {});
      c.release();
    }
    expect(seqScans(sweepPlan)).toEqual([]);
    expect(indexes(sweepPlan)).toEqual(["exports_attachment_idx"]);
  });
});

describe("guarded transitions", () => {
  const take = (ids: string[], sagas: string[], gen: number) =>
    db.query(
      "select id, export_id, node_id, attachment_id, nodes from gk_private.exports_take_for_create_batch($1::uuid[], $2::uuid[], array_fill($3::bigint, array[cardinality($1::uuid[])]))",
      [ids, sagas, gen],
    );

  it("a saga takes a requested row only below its generation; a second saga of the same generation gets nothing", async () => {
    await insertExportNode(db);
    const [img] = await insertImages(db, { team, count: 1 });
    const [rec] = await insertExports(db, { images: [img!] });
    const s1 = await sagaRow();
    const s2 = await sagaRow();
    const taken = async (saga: string, gen: number) => (await take([rec!.id], [saga], gen)).rows[0].export_id;
    expect(await taken(s1, 1)).toBe(rec!.id);
    expect(await taken(s1, 1)).toBe(rec!.id); // the same saga again: idempotent
    expect(await taken(s2, 1)).toBeNull();
    await db.query("select gk_private.exports_release_create($1, $2)", [rec!.id, s2]); // not its row: nothing
    expect(await one("select state, generation from gk_public.exports where id = $1", [rec!.id])).toEqual({
      state: "assigning",
      generation: "1",
    });
    await db.query("select gk_private.exports_release_create($1, $2)", [rec!.id, s1]);
    expect(await taken(s2, 1)).toBeNull(); // a stale duplicate stays out after the undo
    expect(await taken(s2, 2)).toBe(rec!.id);
  });

  it("taking places on an in-service node with a fresh heartbeat, round the nodes for a batch, once", async () => {
    await insertExportNode(db, { expiresIn: "-1 minute" });
    await insertExportNode(db, { state: "expunged" });
    const imgs = await insertImages(db, { team, count: 6 });
    const recs = await insertExports(db, { images: imgs });
    const sagas = await Promise.all(recs.map(() => sagaRow()));
    const ids = recs.map((r) => r.id);
    // No node: nothing is taken, and the answer says why.
    expect((await take(ids, sagas, 1)).rows.map((r) => [r.export_id, r.nodes])).toEqual(Array(6).fill([null, 0]));
    expect((await one("select count(*)::int as n from gk_public.exports where state = 'requested'")).n).toBe(6);
    const [x, y] = [await insertExportNode(db), await insertExportNode(db)];
    const placed = (await take(ids, sagas, 1)).rows;
    expect(placed.map((p) => p.export_id)).toEqual(ids);
    expect(placed.map((p) => p.attachment_id)).toEqual(sagas);
    expect(placed.filter((p) => p.node_id === x.id)).toHaveLength(3);
    expect(placed.filter((p) => p.node_id === y.id)).toHaveLength(3);
    expect((await take(ids, sagas, 1)).rows).toEqual(placed); // a replay: the same nodes
  });

  it("create sagas in flight from the previous release (take, place, attach, live) move onto the new steps", async () => {
    const up = fs
      .readFileSync(path.join(import.meta.dirname, "../../migrations/0132_exports_create_saga_steps.sql"), "utf8")
      .split("-- Down Migration")[0]!;
    const old = async (step: number, outputs: object) =>
      (
        await one(
          "insert into gk_public.sagas (name, steps, params, step, outputs) values ('exports__create', '{take,place,attach,live}', '{}', $1, $2) returning id",
          [step, outputs],
        )
      ).id;
    const take = { blob_key: "k", sha256: "s", length: 1 };
    const place = { id: "n", worker_id: "w", address: "https://x:1", attachment_id: "a" };
    const atPlace = await old(1, { take });
    const atAttach = await old(2, { take, place });
    const atLive = await old(3, { take, place, attach: { path: "/p" } });
    await db.query(up);
    await db.query(up); // once is enough: it touches only the old shape
    const rows = (await db.query("select id, steps, step, outputs from gk_public.sagas where id = any($1)", [[atPlace, atAttach, atLive]]))
      .rows;
    const by = new Map(rows.map((r) => [r.id, r]));
    expect(by.get(atPlace)).toMatchObject({ steps: ["take", "attach", "live"], step: 0, outputs: {} });
    expect(by.get(atAttach)).toMatchObject({ step: 1, outputs: { take: { ...take, node: place } } });
    expect(by.get(atLive)).toMatchObject({ step: 2, outputs: { take: { ...take, node: place }, attach: { path: "/p" } } });
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
