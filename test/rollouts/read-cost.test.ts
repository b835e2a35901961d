// A robot's read, an event, a sweep batch and a robot's move to another team touch the rows of their own robots, never every
// pending row of a launch, however stale the planner's statistics: right after a launch the
// statistics of gk_public.rollout_robots predate it (autovacuum analyzes later, or never when the
// launch is under 10% of the table), and a plan chosen on them must still probe by robot. The
// rows read are the backend's own counts (test/helpers/rows-read.ts).
import type { PoolClient } from "pg";
import { describe, expect, it } from "vitest";
import { regenerateBatch } from "../../src/rollouts/regenerate.ts";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { insertEcus, insertImages, insertRobots, insertRollout, insertTeam } from "../helpers/fixtures/index.ts";
import { testSecrets } from "../helpers/jobs.ts";
import { rowsReadBy } from "../helpers/rows-read.ts";

const TABLES = ["gk_public.rollout_robots", "gk_public.robot_directors", "gk_public.ecus", "gk_public.robots"];
// Per robot a handful of rows in each table: its director row, its ECU, its rollout row, and the
// index entries that lead to them.
const PER_ROBOT = 25;

/** Runs `work` in a transaction on one connection; returns the rows it read per table, then rolls back. */
async function touched(db: TestDb, work: (c: PoolClient) => Promise<void>): Promise<Record<string, number>> {
  const c = await db.pool.connect();
  try {
    await c.query("begin");
    return await rowsReadBy(c, TABLES, () => work(c));
  } finally {
    await c.query("rollback");
    c.release();
  }
}

/** A launched fleet whose statistics were taken before the launch, when no rollout row existed. */
async function staleLaunch(size: number) {
  const db = await createTestDb();
  const team = await insertTeam(db);
  const robots = await insertRobots(db, { team, count: size });
  await insertEcus(db, { robots, hardwareId: "hw-a" });
  const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
  await db.query("analyze gk_public.rollout_robots, gk_public.robot_directors, gk_public.ecus, gk_public.robots");
  await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
  return { db, team, robots };
}

// Two fleets, each in its own database, each the size at which the plans that scanned the whole
// launch were chosen: one robot's statements in 5,000 pending rows, a batch's in 20,000. (On a
// small table a sequential scan is the planner's right choice, with fresh statistics: the large
// fleet makes every right plan a plan by key for a batch of 50.)
const [small, large] = [await staleLaunch(5000), await staleLaunch(20_000)];

describe("read cost follows the robot, not the launch, with statistics taken before the launch", () => {
  it("a dirty read's statements (director_read, then director_store) read a few rows per table", async () => {
    // Eight reads on one connection: past plpgsql's first five custom plans, onto its generic one.
    for (const robot of small.robots.slice(0, 8)) {
      const n = await touched(small.db, async (c) => {
        const read = (await c.query("select * from gk_private.director_read($1, $2)", [robot.id, small.team.id])).rows[0];
        expect(read).toMatchObject({ clean: false, dirty: true });
        const { rows } = await c.query(
          `select gk_private.director_store(array[$1]::uuid[], array[$2]::bigint[], array[$3]::uuid[], array[$4]::int[],
                                            array[$5]::int[], array[now() + interval '1 day'], array['t'], array['s'], array['ts'])`,
          [robot.id, read.generation, read.pending_rollout_id, read.timestamp_version, read.root_version ?? 1],
        );
        expect(rows[0].director_store).toBe(robot.id);
      });
      for (const t of TABLES) expect(n[t], `${t} rows read by one robot's read`).toBeLessThanOrEqual(PER_ROBOT);
    }
  });

  it("a sweep batch of 50 robots reads a few rows per robot", async () => {
    const batch = large.robots.slice(100, 150).map((r) => r.id);
    const n = await touched(large.db, async (c) => {
      const r = await regenerateBatch(c, testSecrets, batch);
      expect(r.stored).toHaveLength(50);
    });
    for (const t of TABLES) expect(n[t], `${t} rows read by a batch of 50`).toBeLessThanOrEqual(PER_ROBOT * 50);
  });

  it("an ECU event of a scheduled robot reads a few rows per table", async () => {
    const robot = small.robots[200];
    const serial = (await small.db.query("select serial from gk_public.ecus where robot_id = $1", [robot.id])).rows[0].serial;
    const c = await small.db.pool.connect();
    try {
      await regenerateBatch(c, testSecrets, [robot.id]); // scheduled: its documents were stored
    } finally {
      c.release();
    }
    for (const type of ["download_started", "installation_completed"]) {
      const n = await touched(small.db, async (c) => {
        await c.query("select gk_private.rollouts_record_event($1, gen_random_uuid(), $2, $3)", [robot.id, serial, type]);
      });
      for (const t of TABLES) expect(n[t], `${t} rows read by one ${type}`).toBeLessThanOrEqual(PER_ROBOT);
    }
  });

  it("moving a robot to another team reads a few rows of the rollout rows", async () => {
    const to = await insertTeam(small.db);
    const robot = small.robots[300];
    const n = await touched(small.db, async (c) => {
      await c.query("update gk_public.robots set team_id = $2 where id = $1", [robot.id, to.id]);
      const { rows } = await c.query("select state from gk_public.rollout_robots where robot_id = $1", [robot.id]);
      expect(rows).toEqual([{ state: "skipped" }]);
    });
    expect(n["gk_public.rollout_robots"], "rollout rows read by one move").toBeLessThanOrEqual(PER_ROBOT);
  });
});
