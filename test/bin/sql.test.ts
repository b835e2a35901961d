// The bin's registry in SQL: the bin view, the bin summary, retry_bin_item and the bin reconciler
// dispatch over gk_public.bin_kinds, so a kind defined in its own file (here: one defined by the
// test, the way an area would) shows up everywhere without an edit of the platform.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { binMetrics } from "../../src/bin/metrics.ts";
import { SQL_DIR } from "../../src/db/migrate.ts";
import { createMetrics } from "../../src/server/metrics.ts";
import { createTestDb } from "../helpers/db.ts";
import { ids, insertPurgeItems, insertTeam, scenario, withCertificates, withRobots, withTeam } from "../helpers/fixtures/index.ts";
import { clearJobs, jobs } from "../helpers/jobs.ts";

const db = await createTestDb();

/** What 850_bin.sql does after every change of a kind's file: regenerate the bin view. */
async function regenerateBinView() {
  await db.query(fs.readFileSync(path.join(SQL_DIR, "850_bin.sql"), "utf8"));
}

async function redispatch(max = 10_000) {
  return (await db.query("select gk_private.bin_redispatch($1) as r", [max])).rows[0].r;
}

/** A kind of an imaginary area `gadgets`: a table of its own, its view, its two functions, its registration. */
async function defineGadgetKind() {
  await db.query(`
    create table gk_public.gadgets (
      id bigint generated always as identity primary key,
      team_id uuid, name text not null, doomed_at timestamptz, attempts int not null default 0,
      last_error text, next_attempt_at timestamptz, retry_requested_at timestamptz);
    create view gk_private.bin__gadget as
      select g.id::text as ref, g.team_id, g.doomed_at as enqueued_at, g.attempts, g.last_error, g.next_attempt_at
        from gk_public.gadgets g where g.doomed_at is not null;
    create function gk_private.bin_redispatch__gadget(max_items int) returns jsonb language sql volatile as $$
      with due as (select id from gk_public.gadgets where doomed_at is not null and next_attempt_at <= now() limit max_items),
      bumped as (update gk_public.gadgets g set next_attempt_at = now() + interval '2 minutes' from due where g.id = due.id returning g.id)
      select jsonb_build_object('redispatched', (select count(*) from bumped), 'busy', false) $$;
    create function gk_private.bin_retry__gadget(ref text) returns boolean language sql volatile as $$
      update gk_public.gadgets set retry_requested_at = now() where id::text = ref and doomed_at is not null returning true $$;
    select gk_private.bin_kind_register('gadget', 'gadgets', 'Gadgets waiting to be scrapped.');`);
  await regenerateBinView();
}

describe("bin registry", () => {
  it("a kind defined in its own file appears in the bin, the summary, retries and the reconciler", async () => {
    await defineGadgetKind();
    const team = (await insertTeam(db, { name: "gadgets" })).id;
    // Empty, it is reported anyway (0), so alerts on the bin's length resolve.
    const metrics = createMetrics(db.pool, [binMetrics]);
    expect(await metrics.render()).toContain('gk_bin_length{kind="gadget"} 0');

    const { rows } = await db.query(
      `insert into gk_public.gadgets (team_id, name, doomed_at, next_attempt_at) values ($1, 'g1', now() - interval '1 hour', now() - interval '1 second'),
              ($1, 'g2', null, null) returning id`,
      [team],
    );
    const bin = await db.query("select kind, ref, team_id, age > interval '59 minutes' as old from gk_public.bin where kind = 'gadget'");
    expect(bin.rows).toEqual([{ kind: "gadget", ref: String(rows[0].id), team_id: team, old: true }]);
    expect((await db.query("select length from gk_public.bin_summary where kind = 'gadget'")).rows).toEqual([{ length: 1 }]);
    expect(await metrics.render()).toContain('gk_bin_length{kind="gadget"} 1');

    expect((await db.query("select gk_public.retry_bin_item('gadget', $1) as ok", [String(rows[0].id)])).rows[0].ok).toBe(true);
    await expect(db.query("select gk_public.retry_bin_item('gadget', $1)", [String(rows[1].id)])).rejects.toThrow(
      /no pending bin item gadget/,
    );

    const r = await redispatch();
    expect(r.kinds.gadget).toEqual({ redispatched: 1, busy: false });
    expect(r.errors).toEqual([]);
  });

  it("a kind that fails is reported and the others still run", async () => {
    await db.query(`create or replace function gk_private.bin_redispatch__gadget(max_items int) returns jsonb language plpgsql volatile as $$
      begin raise exception 'gadget store unreachable'; end $$`);
    const s = await scenario(db, withTeam({ name: "failing-kind" }), withRobots(2), withCertificates("issued"));
    const team = s.team.id;
    const robots = ids(s.robots);
    await db.query("delete from gk_public.robots where id = any($1::uuid[])", [robots]);
    await clearJobs(db);
    await db.query("update gk_public.certificates set next_attempt_at = now() - interval '1 second' where owner_team_id = $1", [team]);
    const r = await redispatch();
    expect(r.errors).toEqual([{ kind: "gadget", error: "gadget store unreachable" }]);
    expect(r.kinds.certificate).toMatchObject({ redispatched: 2, revocations: 2 });
    expect(r.kinds.gadget).toBeUndefined();
  });

  it("refuses a half-defined kind at registration, and unknown kinds everywhere", async () => {
    await expect(db.query("select gk_private.bin_kind_register('widget', 'widgets', 'no view, no functions')")).rejects.toThrow(
      /bin kind widget is missing view gk_private.bin__widget, function gk_private.bin_redispatch__widget\(integer\), function gk_private.bin_retry__widget\(text\)/,
    );
    await expect(db.query("select gk_public.retry_bin_item('widget', 'x')")).rejects.toThrow(
      /unknown bin item kind widget \(known: .*certificate/,
    );
    // purge_items references the registry: no CHECK listing kinds to edit, and no stray kinds.
    await expect(db.query("insert into gk_public.purge_items (kind, ref) values ('widget', 'x')")).rejects.toThrow(/purge_items_kind_fkey/);
  });

  it("a purge_items kind gets its purge task enqueued for new items and for retries", async () => {
    await db.query(`
      create view gk_private.bin__export_blob as
        select p.ref, p.team_id, p.enqueued_at, p.attempts, p.last_error, p.next_attempt_at
          from gk_public.purge_items p where p.kind = 'export_blob' and p.completed_at is null;
      create function gk_private.bin_redispatch__export_blob(max_items int) returns jsonb language sql volatile as
        $$ select gk_private.purge_items_redispatch('export_blob', max_items) $$;
      create function gk_private.bin_retry__export_blob(ref text) returns boolean language sql volatile as
        $$ select gk_private.purge_items_retry('export_blob', ref) $$;
      select gk_private.bin_kind_register('export_blob', 'exports', 'Export blobs.', purge_task := 'exports__delete_blob');`);
    await regenerateBinView();
    await clearJobs(db);
    await insertPurgeItems(db, { kind: "export_blob", refs: ["exports/1", "exports/2"] });
    expect((await jobs(db, "exports__delete_blob")).map((j) => typeof j.payload.id)).toEqual(["number", "number"]);
    expect((await jobs(db, "blobs__purge_prefix")).length).toBe(0);
    await clearJobs(db);
    await db.query("select gk_public.retry_bin_item('export_blob', 'exports/2')");
    expect(await jobs(db, "exports__delete_blob")).toHaveLength(1);
    expect((await db.query("select count(*)::int as n from gk_public.bin where kind = 'export_blob'")).rows[0].n).toBe(2);
  });
});

describe("bin reconciler", () => {
  async function revokeJobIds(): Promise<string[][]> {
    return (await jobs(db, "certificates__revoke")).map((j) => j.payload.ids);
  }

  it("re-enqueues overdue items whose job is gone, but not while their queue is still draining", async () => {
    await db.query(
      'create or replace function gk_private.bin_redispatch__gadget(max_items int) returns jsonb language sql as $$ select \'{"redispatched": 0, "busy": false}\'::jsonb $$',
    );
    await clearJobs(db);
    const s = await scenario(db, withTeam({ name: "reconcile" }), withRobots(3), withCertificates("issued"));
    const robots = ids(s.robots);
    const certs = ids(s.certificates);
    await db.query("delete from gk_public.robots where id = any($1::uuid[])", [robots]);
    expect((await revokeJobIds()).flat().sort()).toEqual([...certs].sort());
    const overdue = () =>
      db.query("update gk_public.certificates set next_attempt_at = now() - interval '1 second' where id = any($1::uuid[])", [certs]);

    // Lease ran out while the job still waits in the queue (workers behind): no duplicates.
    await overdue();
    let r = await redispatch();
    expect(r.kinds.certificate).toMatchObject({ redispatched: 0, revocations: 0, busy: true });
    expect((await revokeJobIds()).length).toBe(1);

    // The job is gone (permanently failed and cleaned up, or never committed): a fresh one.
    await clearJobs(db);
    r = await redispatch();
    expect(r.kinds.certificate).toMatchObject({ redispatched: 3, revocations: 3, busy: false });
    expect((await revokeJobIds()).flat().sort()).toEqual([...certs].sort());
    // … and the lease starts again, so the next tick leaves them alone.
    await clearJobs(db);
    expect((await redispatch()).kinds.certificate).toMatchObject({ redispatched: 0 });

    // At most max_items per kind and activation; the rest at the next one.
    await overdue();
    expect((await redispatch(2)).kinds.certificate).toMatchObject({ redispatched: 2 });
    await clearJobs(db);
    expect((await redispatch(2)).kinds.certificate).toMatchObject({ redispatched: 1 });

    // A row a live task holds (row lock) is skipped.
    await clearJobs(db);
    await overdue();
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from gk_public.certificates where id = $1 for update", [certs[0]]);
      expect((await redispatch()).kinds.certificate).toMatchObject({ redispatched: 2 });
      await holder.query("rollback");
    } finally {
      holder.release();
    }
  });
});
