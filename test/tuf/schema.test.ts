// The database side: statement triggers mark dirty bins and schedule one publish per team,
// bad input is refused with nothing changed, grants, and the publisher's locking against
// concurrent target writers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { jobs } from "../helpers/jobs.ts";
import { binOfPath } from "../../src/tuf/bins.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { signDirty } from "../../src/tuf/publish.ts";
import { addTargets, box, fakeTarget, setupRepository, type TufFixture, verifyEveryRepository } from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;
let other: TufFixture;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 256 });
  other = await setupRepository(db, { bins: 2, blobs: fx.blobs });
  await db.query("delete from graphile_worker._private_jobs");
});
afterAll(async () => {
  await fx?.close();
  await other?.close();
});

const dirtyBins = async (teamId: string) =>
  (await db.query("select bin from gk_public.tuf_roles where team_id = $1 and dirty order by bin", [teamId])).rows.map((r) => r.bin);
const targetCount = async () => Number((await db.query("select count(*) from gk_public.tuf_targets")).rows[0].count);

describe("tuf schema", () => {
  it("a batch of 1,000 targets marks exactly its bins dirty and schedules one publish", async () => {
    const batch = Array.from({ length: 1000 }, (_, i) => fakeTarget(i, "batch"));
    expect(await addTargets(db, fx.teamId, batch)).toBe(1000);
    const expected = [...new Set(batch.map((t) => binOfPath(t.path, 8)))].sort((a, b) => a - b);
    expect(await dirtyBins(fx.teamId)).toEqual(expected);
    const publish = await jobs(db, "tuf__publish");
    expect(publish).toHaveLength(1);
    expect(publish[0].payload).toEqual({ team_id: fx.teamId });
    // Re-adding identical rows writes nothing.
    expect(await addTargets(db, fx.teamId, batch.slice(0, 10))).toBe(0);
  });

  it("signed documents are stored lz4-compressed where the server has lz4 (migration 0115), and read back intact", async () => {
    const hasLz4 = await db
      .query("do $$ begin create temp table lz4_probe (x text compression lz4); drop table lz4_probe; end $$")
      .then(() => true)
      .catch(() => false);
    // A server without lz4 refuses the probe; the migration then left the default (pglz).
    const column = (
      await db.query("select attcompression from pg_attribute where attrelid = 'gk_public.tuf_metadata'::regclass and attname = 'document'")
    ).rows[0];
    expect(column.attcompression).toBe(hasLz4 ? "l" : "");
    if (!hasLz4) return;
    const big = `{"x":"${"0123456789abcdef".repeat(4096)}"}`;
    await db.query(
      "insert into gk_public.tuf_metadata (team_id, role, version, expires, document) values ($1, 'bins-ff', 999, now(), $2)",
      [other.teamId, big],
    );
    const stored = (
      await db.query(
        "select pg_column_compression(document) as c, document = $2 as same from gk_public.tuf_metadata where team_id = $1 and version = 999",
        [other.teamId, big],
      )
    ).rows[0];
    await db.query("delete from gk_public.tuf_metadata where team_id = $1 and version = 999", [other.teamId]);
    expect(stored).toEqual({ c: "lz4", same: true });
  });

  it("one statement touching two teams schedules one publish per team", async () => {
    await db.query("delete from graphile_worker._private_jobs");
    await db.query(
      `insert into gk_public.tuf_targets (team_id, path, length, hashes)
       select t, 'two-teams/' || i, i, jsonb_build_object('sha256', encode(sha256(i::text::bytea), 'hex'))
         from unnest($1::uuid[]) t, generate_series(1, 50) i`,
      [[fx.teamId, other.teamId]],
    );
    const teams = (await jobs(db, "tuf__publish")).map((j) => j.payload.team_id).sort();
    expect(teams).toEqual([fx.teamId, other.teamId].sort());
  });

  it("bad input is refused with a clear error and nothing is written", async () => {
    const before = await targetCount();
    const bad: [unknown, RegExp][] = [
      [[{ path: "x", length: 1, hashes: { sha256: "not-hex" } }], /target "x": hashes: sha256 must be lower-case hex/],
      [[{ path: "x", length: 1, hashes: {} }], /hashes: must be an object/],
      [[{ path: "/abs", length: 1, hashes: { sha256: "ab".repeat(32) } }], /target path "\/abs" starts with \//],
      [[{ path: "x", length: -1, hashes: { sha256: "ab".repeat(32) } }], /length -1 is not between 0 and 2\^53 - 1/],
      [
        [{ path: "x", length: 1, hashes: { sha256: "ab".repeat(32) }, custom: { ratio: 0.5 } }],
        /custom at \$\.ratio number 0\.5 is not an integer/,
      ],
      [[{ length: 1, hashes: { sha256: "ab".repeat(32) } }], /null value in column "path"/],
      [[fakeTarget(1, "ok"), { ...fakeTarget(2, "ok"), hashes: { sha256: "zz" } }], /sha256 must be lower-case hex/],
      [{ path: "x" }, /targets must be a JSON array/],
    ];
    for (const [targets, error] of bad) {
      await expect(addTargets(db, fx.teamId, targets as object[])).rejects.toThrow(error);
    }
    await expect(addTargets(db, "00000000-0000-0000-0000-000000000000", [fakeTarget(1)])).rejects.toThrow(/has no TUF repository/);
    expect(await targetCount()).toBe(before);
  });

  it("gk_admin writes targets through SQL functions; gk_viewer reads status but cannot write", async () => {
    const c = await db.pool.connect();
    try {
      await c.query("begin");
      await c.query("set local role gk_admin");
      await c.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [fx.teamId, JSON.stringify([fakeTarget(1, "admin")])]);
      await c.query("select gk_public.tuf_remove_targets($1, array[$2])", [fx.teamId, fakeTarget(1, "batch").path]);
      await c.query("commit");
      await c.query("begin");
      await c.query("set local role gk_viewer");
      const { rows } = await c.query("select team_name, bins from gk_public.tuf_repository_status where team_id = $1", [fx.teamId]);
      expect(rows).toEqual([{ team_name: fx.team, bins: 256 }]);
      await expect(
        c.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [fx.teamId, JSON.stringify([fakeTarget(2, "viewer")])]),
      ).rejects.toThrow(/permission denied/);
      await c.query("rollback");
      await c.query("begin");
      await c.query("set local role gk_admin");
      await expect(c.query("select * from gk_private.tuf_online_keys")).rejects.toThrow(/permission denied/);
      await c.query("rollback");
    } catch (e) {
      await c.query("rollback").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
    // Nothing that looks like key material in the exposed schema.
    const { rows } = await db.query(
      "select table_name, column_name from information_schema.columns where table_schema = 'gk_public' and column_name ~ '(private|sealed|secret)'",
    );
    expect(rows).toEqual([]);
  });

  it("a writer committing while a publish runs is never lost (clean bin: publish skips it; dirty bin: it stays dirty)", async () => {
    await signDirty(fromPool(db.pool), box, other.teamId);
    expect(await dirtyBins(other.teamId)).toEqual([]);
    const inBin0 = Array.from({ length: 200 }, (_, i) => fakeTarget(i, "race")).filter((t) => binOfPath(t.path, 1) === 0);

    // 1. The bin is clean; an uncommitted writer dirties it while a publish runs.
    const w = await db.pool.connect();
    try {
      await w.query("begin");
      await w.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [other.teamId, JSON.stringify([inBin0[0]])]);
      const r = await signDirty(fromPool(db.pool), box, other.teamId);
      expect(r.bins).toBe(0);
      await w.query("commit");
      expect(await dirtyBins(other.teamId)).toEqual([0]); // still dirty: the next publish takes it

      // 2. The bin is dirty; a second uncommitted writer adds to it. The publish signs without
      // waiting, then waits for the writer's row lock before clearing the flag, sees the
      // generation moved, and leaves the bin dirty: its version lacks the writer's target.
      await w.query("begin");
      await w.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [other.teamId, JSON.stringify([inBin0[1]])]);
      const publishing = signDirty(fromPool(db.pool), box, other.teamId);
      await waitUntilBlocked();
      await w.query("commit");
      expect((await publishing).bins).toBe(1);
      const first = Object.keys(await latestBin0());
      expect(first).toContain(inBin0[0].path);
      expect(first).not.toContain(inBin0[1].path);
      expect(await dirtyBins(other.teamId)).toEqual([0]);
    } finally {
      w.release();
    }
    // The next publish (the writer scheduled one) has both.
    expect((await signDirty(fromPool(db.pool), box, other.teamId)).bins).toBe(1);
    expect(Object.keys(await latestBin0())).toEqual(expect.arrayContaining([inBin0[0].path, inBin0[1].path]));
    expect(await dirtyBins(other.teamId)).toEqual([]);
  });
});

async function latestBin0(): Promise<Record<string, unknown>> {
  const { rows } = await db.query(
    "select document from gk_public.tuf_metadata where team_id = $1 and role = 'bins-0' order by version desc limit 1",
    [other.teamId],
  );
  return JSON.parse(rows[0].document).signed.targets;
}

async function waitUntilBlocked(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await db.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows[0].n > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the publish never waited for the writer's lock");
}
