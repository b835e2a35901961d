// The volume model in SQL, without agents: who owns what (every FK's ON DELETE), the orphan mark,
// the composite parent key (including a create-child / destroy-parent race on two connections),
// report reconciliation both ways, missing and failed volumes, and the worker lifecycle.
import pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { jobs } from "../helpers/jobs.ts";
import { insertBuilds, insertContainers, insertTeam, insertVolumes, insertWorker, volumeStates } from "../helpers/fixtures/index.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "builders" })).id;

async function countRows(table: string, where = "true"): Promise<number> {
  return (await db.query(`select count(*)::int as n from gk_public.${table} where ${where}`)).rows[0].n;
}

const mark = async (workers: string[] | null = null) =>
  (await db.query("select gk_private.volumes_mark_orphans($1::uuid[]) as n", [workers])).rows[0].n as number;

async function clearJobs() {
  await db.query("delete from graphile_worker._private_jobs");
}

async function sqlError(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message };
  }
  throw new Error("expected the statement to fail");
}

beforeEach(async () => {
  await db.query("delete from gk_public.workers");
  await clearJobs();
});

describe("ownership", () => {
  it("every owner's delete sets the volume's reference NULL; a cache in use cannot be deleted; a pruned worker's rows cascade", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const [build] = await insertBuilds(db, { team, count: 1 });
    const [container] = await insertContainers(db, { worker: w, builds: [build!] });
    const { rows: chain } = await db.query(
      `with t as (insert into gk_public.base_resource_types (name) values ('git') returning id),
            wbrt as (insert into gk_public.worker_base_resource_types (worker_id, base_resource_type_id) select $1, id from t returning id),
            cfg as (insert into gk_public.resource_configs (base_resource_type_id, source_hash) select id, 'src' from t returning id),
            cache as (insert into gk_public.resource_caches (resource_config_id, version_digest) select id, 'v1' from cfg returning id),
            use as (insert into gk_public.resource_cache_uses (resource_cache_id, build_id) select id, $2 from cache returning id),
            wrc as (insert into gk_public.worker_resource_caches (worker_id, resource_cache_id, worker_base_resource_type_id)
                    select $1, cache.id, wbrt.id from cache, wbrt returning id),
            tc as (insert into gk_public.worker_task_caches (worker_id, team_id, name) values ($1, $3, 'job/task/cache') returning id)
       select (select id from t) t, (select id from wbrt) wbrt, (select id from cache) cache, (select id from wrc) wrc, (select id from tc) tc`,
      [w, build, team],
    );
    const c = chain[0];
    const { rows: vols } = await db.query(
      `insert into gk_public.volumes (worker_id, state, container_id, worker_resource_cache_id, worker_base_resource_type_id, worker_task_cache_id)
       values ($1, 'created', $2, null, null, null), ($1, 'created', null, $3, null, null),
              ($1, 'created', null, null, $4, null), ($1, 'created', null, null, null, $5)
       returning id`,
      [w, container, c.wrc, c.wbrt, c.tc],
    );
    const ids = vols.map((r) => Number(r.id));

    // The cache is pinned while the build uses it.
    const pinned = await sqlError(db.query("delete from gk_public.resource_caches where id = $1", [c.cache]));
    expect(pinned.code).toBe("23503");
    expect(pinned.message).toContain("resource_cache_uses");

    await db.query("delete from gk_public.containers where id = $1", [container]);
    await db.query("delete from gk_public.worker_task_caches where id = $1", [c.tc]);
    // The build goes: its cache use with it, then the cache can go (its worker cache cascades).
    await db.query("delete from gk_public.builds where id = $1", [build]);
    expect(await countRows("resource_cache_uses")).toBe(0);
    await db.query("delete from gk_public.resource_caches where id = $1", [c.cache]);
    expect(await countRows("worker_resource_caches")).toBe(0);
    // A config cannot go while caches of it exist (RESTRICT); here none are left.
    await db.query("delete from gk_public.base_resource_types where id = $1", [c.t]);
    expect(await countRows("worker_base_resource_types")).toBe(0);

    const { rows: after } = await db.query(
      `select count(*)::int as n from gk_public.volumes where id = any($1::bigint[])
          and container_id is null and worker_resource_cache_id is null and worker_base_resource_type_id is null and worker_task_cache_id is null`,
      [ids],
    );
    expect(after[0].n).toBe(4);
    expect(await volumeStates(db, ids)).toEqual({ created: 4 });

    // Pruning (deleting) the worker takes its volumes and containers.
    await insertContainers(db, { worker: w, count: 2 });
    await db.query("delete from gk_public.workers where id = $1", [w]);
    expect(await countRows("volumes")).toBe(0);
    expect(await countRows("containers")).toBe(0);
  });
});

describe("the orphan mark", () => {
  it("marks every ownerless leaf on serving workers in one statement, and the parent once its children are gone", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const stalled = await insertWorker(db, { name: "w2", state: "stalled" });
    const landed = await insertWorker(db, { name: "w3", state: "landed" });
    const retiring = await insertWorker(db, { name: "w4", state: "retiring" });
    const containers = await insertContainers(db, { worker: w, count: 6 });
    const parents = await insertVolumes(db, { worker: w, containers: containers.slice(0, 3) });
    const children = await insertVolumes(db, { worker: w, containers: containers.slice(3, 6), parents: parents.map((p) => p.id) });
    const keep = await insertVolumes(db, { worker: w, containers: [containers[0]!] });
    const elsewhere = [
      ...(await insertVolumes(db, { worker: stalled, containers: [null] })),
      ...(await insertVolumes(db, { worker: landed, containers: [null] })),
    ];
    const onRetiring = await insertVolumes(db, { worker: retiring, containers: [null] });
    const creating = await insertVolumes(db, { worker: w, containers: [null], state: "creating" });

    // Everything on w loses its containers except `keep`'s; parents 0 and 1 lose theirs too.
    await db.query("update gk_public.volumes set container_id = null where id <> $1 and worker_id = $2", [keep[0]!.id, w]);
    expect(await mark()).toBe(3 + 1); // the three children and the retiring worker's volume
    expect(
      await volumeStates(
        db,
        children.map((c) => c.id),
      ),
    ).toEqual({ destroying: 3 });
    expect(
      await volumeStates(
        db,
        parents.map((p) => p.id),
      ),
    ).toEqual({ created: 3 });
    expect(
      await volumeStates(
        db,
        [...keep, ...elsewhere, ...creating].map((v) => v.id),
      ),
    ).toEqual({ created: 3, creating: 1 });
    expect(
      await volumeStates(
        db,
        onRetiring.map((v) => v.id),
      ),
    ).toEqual({ destroying: 1 });
    expect(await mark()).toBe(0);

    // The agent confirmed two children: their parents are orphans now.
    await db.query("select gk_private.volumes_destroyed($1, $2::uuid[])", [w, children.slice(0, 2).map((c) => c.handle)]);
    expect(await mark([w])).toBe(2);
    expect(
      await volumeStates(
        db,
        parents.map((p) => p.id),
      ),
    ).toEqual({ destroying: 2, created: 1 });
  });

  it("activates the collector once per statement when owners go, not when the collector itself updates", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const containers = await insertContainers(db, { worker: w, count: 50 });
    await insertVolumes(db, { worker: w, containers });
    await clearJobs();
    await db.query("delete from gk_public.containers where worker_id = $1", [w]);
    expect((await jobs(db, "volumes__collect")).length).toBe(1);
    await clearJobs();
    expect(await mark()).toBe(50);
    const due = await db.query("select * from gk_private.volumes_due_destroys($1, 10)", [w]);
    expect(due.rowCount).toBe(10);
    expect(await jobs(db, "volumes__collect")).toEqual([]);
    // A child that goes may leave its parent an orphan: activated — unless the collector deleted
    // it (it marks the worker again itself).
    const owners = await insertContainers(db, { worker: w, count: 4 });
    const [p1, p2] = await insertVolumes(db, { worker: w, containers: owners.slice(0, 2) });
    const kids = await insertVolumes(db, { worker: w, containers: [null, null], parents: [p1!.id, p2!.id] });
    expect(await mark([w])).toBe(2);
    await clearJobs();
    await db.query("select gk_private.volumes_destroyed($1, array[$2::uuid])", [w, kids[0]!.handle]);
    expect(await jobs(db, "volumes__collect")).toEqual([]);
    await db.query("delete from gk_public.volumes where id = $1", [kids[1]!.id]);
    expect((await jobs(db, "volumes__collect")).length).toBe(1);
  });

  it("marks 1,000 orphans among 4,000 volumes with the plan on its indexes", async () => {
    const w = await insertWorker(db, { name: "big" });
    const containers = await insertContainers(db, { worker: w, count: 4_000 });
    await insertVolumes(db, { worker: w, containers });
    await db.query("delete from gk_public.containers where id = any($1::bigint[])", [containers.slice(0, 1000)]);
    await db.query("analyze gk_public.volumes");
    const { rows: plan } = await db.query(
      `explain select v.id from gk_public.volumes v where v.state = 'created' and v.container_id is null
          and v.worker_resource_cache_id is null and v.worker_base_resource_type_id is null and v.worker_task_cache_id is null
          and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)`,
    );
    expect(plan.map((r) => r["QUERY PLAN"]).join("\n")).toContain("volumes_ownerless_idx");
    expect(await mark()).toBe(1000);
  });
});

describe("handles", () => {
  it("are time-ordered (UUID version 7): volumes made later get higher handles, so writes to many neighbours touch neighbouring index pages", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const handles: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Each in its own millisecond: within one, the order is random.
      await db.query("select pg_sleep(0.002)");
      const [v] = await insertVolumes(db, { worker: w, containers: [null] });
      handles.push(v!.handle);
    }
    expect([...handles].sort()).toEqual(handles);
    for (const h of handles) expect(h).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Their first 48 bits are the time they were made, in Unix milliseconds.
    const { rows } = await db.query(
      "select abs(('x' || lpad(replace(left(handle::text, 13), '-', ''), 16, '0'))::bit(64)::bigint - (extract(epoch from now()) * 1000)::bigint) < 60000 as now from gk_public.volumes where handle = $1",
      [handles[0]],
    );
    expect(rows[0].now).toBe(true);
  });
});

describe("the copy-on-write key", () => {
  it("refuses a child under a parent that is not created, and a parent with a child cannot leave created or be deleted", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const other = await insertWorker(db, { name: "w2" });
    const containers = await insertContainers(db, { worker: w, count: 3 });
    const [parent] = await insertVolumes(db, { worker: w, containers: [containers[0]!] });
    const [child] = await insertVolumes(db, { worker: w, containers: [containers[1]!], parents: [parent!.id] });

    const leave = await sqlError(
      db.query("update gk_public.volumes set state = 'destroying', next_attempt_at = now() where id = $1", [parent!.id]),
    );
    expect(leave.code).toBe("23503");
    expect(leave.message).toContain("volumes_parent_fkey");
    const del = await sqlError(db.query("delete from gk_public.volumes where id = $1", [parent!.id]));
    expect(del.code).toBe("23503");
    // A child on another worker than its parent.
    const cross = await sqlError(
      db.query(
        "insert into gk_public.volumes (worker_id, state, container_id, parent_id, parent_state) values ($1, 'created', null, $2, 'created')",
        [other, parent!.id],
      ),
    );
    expect(cross.code).toBe("23503");
    // A child must reference the created state.
    const wrongState = await sqlError(
      db.query("insert into gk_public.volumes (worker_id, parent_id, parent_state) values ($1, $2, 'destroying')", [w, parent!.id]),
    );
    expect(wrongState.code).toBe("23514");

    // Through create_volume: a destroying parent gets a clear refusal and nothing is inserted.
    await db.query("delete from gk_public.volumes where id = $1", [child!.id]);
    await db.query("update gk_public.volumes set state = 'destroying', next_attempt_at = now() where id = $1", [parent!.id]);
    const before = await countRows("volumes");
    const refused = await sqlError(
      db.query("select gk_public.create_volume('w1', $1, container_id => $2)", [parent!.handle, containers[2]]),
    );
    expect(refused).toEqual({
      code: "55000",
      message: `parent volume ${parent!.handle} is destroying: a copy-on-write child needs a created parent`,
    });
    expect(await countRows("volumes")).toBe(before);

    const ownerless = await sqlError(db.query("select gk_public.create_volume('w1')"));
    expect(ownerless.code).toBe("22023");
  });

  it("create-child racing destroy-parent on two connections: the key decides, the loser gets a clear error, nothing is corrupted", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const containers = await insertContainers(db, { worker: w, count: 4 });
    const [p1, p2] = await insertVolumes(db, { worker: w, containers: [containers[0]!, containers[1]!] });
    await db.query("update gk_public.volumes set container_id = null where id = any($1::bigint[])", [[p1!.id, p2!.id]]);
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await a.connect();
    await b.connect();
    try {
      // 1. The child is being created (uncommitted) while the collector marks: the parent is
      // skipped (its row is held), then it has a child and is no orphan.
      await a.query("begin");
      await a.query("select gk_public.create_volume('w1', $1, container_id => $2)", [p1!.handle, containers[2]]);
      const marked = await b.query("select gk_private.volumes_mark_orphans() as n");
      expect(marked.rows[0].n).toBe(1); // p2 only
      await a.query("commit");
      expect(await mark()).toBe(0);
      expect(await volumeStates(db, [p1!.id])).toEqual({ created: 1 });

      // 2. The parent is being marked (uncommitted) while a child is created: the insert waits on
      // the key, then is refused with a clear error once the mark commits.
      await db.query("delete from gk_public.volumes where parent_id = $1", [p1!.id]);
      await b.query("begin");
      expect((await b.query("select gk_private.volumes_mark_orphans() as n")).rows[0].n).toBe(1);
      const create = a.query("select gk_public.create_volume('w1', $1, container_id => $2)", [p1!.handle, containers[3]]).then(
        () => null,
        (e: { code: string; message: string }) => e,
      );
      await new Promise((r) => setTimeout(r, 200));
      await b.query("commit");
      const err = await create;
      expect(err?.code).toBe("55000");
      expect(err?.message).toBe(`parent volume ${p1!.handle} is being destroyed: a copy-on-write child needs a created parent`);
      expect(await volumeStates(db, [p1!.id, p2!.id])).toEqual({ destroying: 2 });
      expect(await countRows("volumes", `parent_id = ${p1!.id}`)).toBe(0);
    } finally {
      await a.end();
      await b.end();
    }
  });
});

describe("report reconciliation", () => {
  it("adopts unknown handles, confirms destroys, completes or fails creations, marks and clears missing — in one statement", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const containers = await insertContainers(db, { worker: w, count: 8 });
    const created = await insertVolumes(db, { worker: w, containers: containers.slice(0, 4) });
    const creating = await insertVolumes(db, { worker: w, containers: containers.slice(4, 8), state: "creating" });
    await db.query("update gk_public.volumes set state_changed_at = now() - interval '1 hour' where id = any($1::bigint[])", [
      creating.slice(1).map((v) => v.id),
    ]);
    const destroying = await insertVolumes(db, { worker: w, containers: [null, null] });
    await mark();
    await db.query("update gk_public.volumes set missing_since = now() where id = $1", [created[3]!.id]);
    const unknown = ["6a0e6f7c-8a6e-4c2b-9d7e-0c9a1f3b2e11", "6a0e6f7c-8a6e-4c2b-9d7e-0c9a1f3b2e12"];

    // On the agent: created 0, 1 and 3 (not 2), creating 0 (young) and 1 (old), destroying 0, and
    // two handles nobody knows; creating 2 (old) is still being built there, creating 3 is gone.
    const live = [created[0], created[1], created[3], creating[0], creating[1], destroying[0]].map((v) => v!.handle).concat(unknown);
    const { rows } = await db.query("select gk_private.volumes_report($1, $2::uuid[], $3::uuid[]) as r", [w, live, [creating[2]!.handle]]);
    expect(rows[0].r).toEqual({ reported: 8, unknown: 2, confirmed: 1, completed: 2, failed: 1, missing: 1, found: 1, stamped: 1 });
    const { rows: states } = await db.query(
      "select handle::text, state, missing_since is not null as missing, adopted from gk_public.volumes where worker_id = $1",
      [w],
    );
    const by = Object.fromEntries(states.map((s) => [s.handle, s]));
    expect(by[created[2]!.handle]).toMatchObject({ state: "created", missing: true });
    expect(by[created[3]!.handle]).toMatchObject({ state: "created", missing: false });
    expect(by[creating[0]!.handle]).toMatchObject({ state: "created" });
    expect(by[creating[1]!.handle]).toMatchObject({ state: "created" });
    expect(by[creating[2]!.handle]).toMatchObject({ state: "creating", missing: false });
    expect(by[creating[3]!.handle]).toMatchObject({ state: "failed" });
    expect(by[destroying[0]!.handle]).toMatchObject({ state: "destroying" });
    expect(by[destroying[1]!.handle]).toBeUndefined();
    expect(by[unknown[0]!]).toMatchObject({ state: "destroying", adopted: true });

    // A second identical report only finds the volume that just failed missing too.
    const again = await db.query("select gk_private.volumes_report($1, $2::uuid[], $3::uuid[]) as r", [w, live, [creating[2]!.handle]]);
    expect(again.rows[0].r).toMatchObject({ unknown: 0, confirmed: 0, completed: 0, failed: 0, missing: 1, found: 0 });

    // The report is joined as sent (not de-duplicated first): a handle sent twice still changes its
    // row once, and an unknown one sent twice is adopted once.
    const stranger = "6a0e6f7c-8a6e-4c2b-9d7e-0c9a1f3b2e13";
    const twice = [...live, created[2]!.handle, created[2]!.handle, stranger, stranger];
    const dup = await db.query("select gk_private.volumes_report($1, $2::uuid[]) as r", [w, twice]);
    expect(dup.rows[0].r).toMatchObject({ reported: twice.length, unknown: 1, found: 1, missing: 0 });
    expect(await countRows("volumes", `handle = '${stranger}'`)).toBe(1);
  });

  it("removes volumes missing past the grace period with their descendants, never on a stalled worker", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const s = await insertWorker(db, { name: "w2" });
    const containers = await insertContainers(db, { worker: w, count: 3 });
    const [root] = await insertVolumes(db, { worker: w, containers: [containers[0]!] });
    const [child] = await insertVolumes(db, { worker: w, containers: [containers[1]!], parents: [root!.id] });
    await insertVolumes(db, { worker: w, containers: [containers[2]!], parents: [child!.id] });
    const onStalled = await insertVolumes(db, { worker: s, containers: [null] });
    await db.query("update gk_public.workers set state = 'stalled', stalled_since = now() where id = $1", [s]);
    await db.query("update gk_public.volumes set missing_since = now() - interval '10 minutes' where id = any($1::bigint[])", [
      [root!.id, onStalled[0]!.id],
    ]);
    expect((await db.query("select gk_private.volumes_remove_missing() as n")).rows[0].n).toBe(3);
    expect(await countRows("volumes", `worker_id = '${w}'`)).toBe(0);
    expect(await countRows("volumes", `worker_id = '${s}'`)).toBe(1);
  });

  it("destroys failed creations after their grace period", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const [young, old] = await insertVolumes(db, { worker: w, containers: [null, null], state: "failed" });
    await db.query("update gk_public.volumes set state_changed_at = now() - interval '2 hours' where id = $1", [old!.id]);
    expect((await db.query("select gk_private.volumes_expire_failed() as n")).rows[0].n).toBe(1);
    expect(await volumeStates(db, [young!.id, old!.id])).toEqual({ failed: 1, destroying: 1 });
  });
});

describe("destroy claims", () => {
  it("one collector per worker (a lease on its row, renewable, taken over once it runs out); due destroys oldest first; failures back off with their error", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const vols = await insertVolumes(db, { worker: w, containers: Array(10).fill(null) });
    await mark();
    const lease = (l: string | null = null) =>
      db.query("select gk_private.volumes_worker_lease($1, $2::interval) as ok", [w, l]).then((r) => r.rows[0].ok);
    expect(await lease("1 hour")).toBe(true);
    expect(await lease()).toBeNull(); // a second collector skips the worker
    await db.query("update gk_public.workers set collector_lease_until = now() - interval '1 second' where id = $1", [w]);
    expect(await lease()).toBe(true); // a dead collector's lease ran out: taken over
    await db.query("select gk_private.volumes_worker_release($1)", [w]);
    expect(await lease()).toBe(true);
    await db.query("update gk_public.volumes set next_attempt_at = now() - interval '1 minute' where id = $1", [vols[3]!.id]);
    const due = await db.query("select handle::text from gk_private.volumes_due_destroys($1, 4)", [w]);
    expect(due.rows.map((r) => r.handle)[0]).toBe(vols[3]!.handle);
    expect(due.rowCount).toBe(4);
    await db.query("select gk_private.volumes_destroy_failed($1, $2::uuid[], $3::text[])", [w, [vols[0]!.handle], ["disk said no"]]);
    const { rows } = await db.query("select attempts, last_error, next_attempt_at > now() as later from gk_public.volumes where id = $1", [
      vols[0]!.id,
    ]);
    expect(rows[0]).toEqual({ attempts: 1, last_error: "disk said no", later: true });
    expect(
      (await db.query("select handle::text from gk_private.volumes_due_destroys($1, 10)", [w])).rows.map((r) => r.handle),
    ).not.toContain(vols[0]!.handle);
    // An operator's retry makes it due now and activates the collector.
    await clearJobs();
    await db.query("select gk_public.retry_volume_destroy($1)", [vols[0]!.handle]);
    expect((await db.query("select next_attempt_at <= now() as due from gk_public.volumes where id = $1", [vols[0]!.id])).rows[0].due).toBe(
      true,
    );
    expect((await jobs(db, "volumes__collect")).length).toBe(1);
  });

  it("force-destroys a whole tree, leaves first", async () => {
    const w = await insertWorker(db, { name: "w1" });
    const containers = await insertContainers(db, { worker: w, count: 3 });
    const [root] = await insertVolumes(db, { worker: w, containers: [containers[0]!] });
    const kids = await insertVolumes(db, { worker: w, containers: [containers[1]!, containers[2]!], parents: [root!.id, root!.id] });
    expect((await db.query("select gk_public.force_destroy_volume($1) as n", [root!.handle])).rows[0].n).toBe(3);
    expect(await mark()).toBe(2);
    await db.query("select gk_private.volumes_destroyed($1, $2::uuid[])", [w, kids.map((k) => k.handle)]);
    expect(await mark()).toBe(1);
    expect(await volumeStates(db, [root!.id])).toEqual({ destroying: 1 });
  });
});

describe("worker lifecycle", () => {
  it("stalls expired workers, lands and retires idle ones (retiring deletes and revokes), prunes only non-running ones", async () => {
    const expired = await insertWorker(db, { name: "expired", expiresIn: "-1 second" });
    const landing = await insertWorker(db, { name: "landing", state: "landing" });
    const busyLanding = await insertWorker(db, { name: "busy", state: "landing" });
    const retiring = await insertWorker(db, { name: "retiring", state: "retiring" });
    const running = await insertWorker(db, { name: "running" });
    await insertContainers(db, { worker: busyLanding, builds: await insertBuilds(db, { team, count: 1 }) });
    await insertContainers(db, { worker: landing, builds: await insertBuilds(db, { team, count: 1, status: "succeeded" }) });
    const { rows: cert } = await db.query(
      `insert into gk_public.certificates (worker_id, profile, status, ca_ref, serial, public_key_pem, not_after, issued_at)
       values ($1, 'worker', 'issued', 'ref', 'abc', '-----BEGIN PUBLIC KEY-----x-----END PUBLIC KEY-----', now() + interval '1 day', now())
       returning id`,
      [retiring],
    );
    await insertVolumes(db, { worker: retiring, containers: [null] });

    const { rows } = await db.query("select gk_private.workers_reconcile() as r");
    expect(rows[0].r).toEqual({ stalled: 1, landed: 1, retired: 1, pruned: 0 });
    const { rows: ws } = await db.query("select name, state, address from gk_public.workers order by name");
    expect(ws).toEqual([
      { name: "busy", state: "landing", address: "https://127.0.0.1:1" },
      { name: "expired", state: "stalled", address: "https://127.0.0.1:1" },
      { name: "landing", state: "landed", address: null },
      { name: "running", state: "running", address: "https://127.0.0.1:1" },
    ]);
    expect((await db.query("select status, revocation_reason from gk_public.certificates where id = $1", [cert[0].id])).rows[0]).toEqual({
      status: "revoking",
      revocation_reason: "cessationOfOperation",
    });
    expect(await countRows("volumes", `worker_id = '${retiring}'`)).toBe(0);

    const refused = await sqlError(db.query("select gk_public.prune_worker('running')"));
    expect(refused.code).toBe("55000");
    await db.query("select gk_public.prune_worker('expired')");
    expect(await countRows("workers", `id = '${expired}'`)).toBe(0);
    // A stalled worker's agent answering again brings it back.
    await db.query("update gk_public.workers set state = 'stalled', stalled_since = now() where id = $1", [running]);
    expect((await db.query("select gk_private.worker_heartbeat($1, 3, 0) as s", [running])).rows[0].s).toBe("running");
    expect(landing).toBeTruthy();
  });

  it("enrols a worker with its own key; re-enrolling supersedes the previous certificate", async () => {
    const key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
    const { rows: c1 } = await db.query("select * from gk_public.enroll_worker('agent-1', $1)", [key]);
    expect(c1[0]).toMatchObject({ profile: "worker", status: "issuing", owner_team_id: null });
    await db.query("update gk_public.certificates set status = 'issued', ca_ref = 'r', serial = 'ab' where id = $1", [c1[0].id]);
    const { rows: c2 } = await db.query("select * from gk_public.enroll_worker('agent-1', $1)", [key]);
    expect(c2[0].worker_id).toBe(c1[0].worker_id);
    const { rows } = await db.query(
      "select id, status, revocation_reason from gk_public.certificates where worker_id = $1 order by created_at",
      [c1[0].worker_id],
    );
    expect(rows.find((r) => r.id === c1[0].id)).toMatchObject({ status: "revoking", revocation_reason: "superseded" });
    expect(rows.find((r) => r.id === c2[0].id)).toMatchObject({ status: "issuing" });
    expect((await sqlError(db.query("select gk_public.enroll_worker('Bad Name', $1)", [key]))).code).toBe("22023");
    expect((await sqlError(db.query("select gk_public.enroll_worker('ok', null)"))).code).toBe("22023");
  });
});
