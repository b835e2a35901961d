// Rollouts in SQL (sql/800_rollouts.sql, sql/600_rollouts_director.sql): team scoping by the
// composite keys, launch as one statement that marks director metadata dirty, supersession,
// idempotent ECU events, terminal states, cancel, and the processor that ends every rollout.
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { readDirector, regenerateBatch } from "../../src/rollouts/regenerate.ts";
import { runJobs, testSecrets } from "../helpers/jobs.ts";
import {
  insertEcus,
  insertImages,
  insertRobotGroup,
  insertRobots,
  insertRollout,
  insertTeam,
  type RobotRow,
} from "../helpers/fixtures/index.ts";

const db = await createTestDb();

async function fleet(n: number, hardwareId = "hw-a") {
  const team = await insertTeam(db);
  const robots = await insertRobots(db, { team, count: n });
  const ecus = await insertEcus(db, { robots, hardwareId });
  const [image] = await insertImages(db, { team, hardwareIds: [hardwareId] });
  return { team, robots, ecus, image };
}

const robotStates = async (rolloutId: string) =>
  Object.fromEntries(
    (await db.query("select robot_id, state from gk_public.rollout_robots where rollout_id = $1", [rolloutId])).rows.map((r) => [
      r.robot_id,
      r.state,
    ]),
  );
/** Each robot's director row with its row version: a write of the row changes xmin. */
const directorRows = async (robots: RobotRow[]) =>
  (
    await db.query(
      "select robot_id, xmin::text, generation, dirty from gk_public.robot_directors where robot_id = any($1) order by robot_id",
      [robots.map((r) => r.id)],
    )
  ).rows;
/** The sweep's work list, of one team. */
const due = async (team: { id: string }) =>
  (await db.query("select robot_id from gk_private.director_due(1000) where team_id = $1", [team.id])).rows.map((r) => r.robot_id).sort();
const director = async (robot: RobotRow) =>
  (await db.query("select dirty, generation::int from gk_public.robot_directors where robot_id = $1", [robot.id])).rows[0];
/** Signs these robots' director metadata as the sweep does, which schedules their pending rows. */
async function schedule(robots: RobotRow[]) {
  const c = await db.pool.connect();
  try {
    await regenerateBatch(
      c,
      testSecrets,
      robots.map((r) => r.id),
    );
  } finally {
    c.release();
  }
}
const event = (robot: RobotRow, serial: string, type: string, eventId = crypto.randomUUID(), description?: string) =>
  db
    .query("select gk_private.rollouts_record_event($1, $2, $3, $4, $5) as r", [robot.id, eventId, serial, type, description ?? null])
    .then((r) => r.rows[0].r as string);
const processRollouts = async () => (await db.query("select * from gk_private.rollouts_process(100)")).rows;
const rollout = async (id: string) => (await db.query("select * from gk_public.rollouts where id = $1", [id])).rows[0];

describe("rollouts: team scoping", () => {
  it("refuses another team's robots, group and images, and an image not built for the hardware id", async () => {
    const a = await fleet(1);
    const b = await fleet(1);
    const groupB = await insertRobotGroup(db, { team: b.team, robots: b.robots });
    await expect(insertRollout(db, { team: a.team, images: [{ hardwareId: "hw-a", image: a.image }], robots: b.robots })).rejects.toThrow(
      /rollout_selected_robots_team_id_robot_id_fkey/,
    );
    await expect(insertRollout(db, { team: a.team, images: [{ hardwareId: "hw-a", image: a.image }], group: groupB })).rejects.toThrow(
      /foreign key/,
    );
    await expect(insertRollout(db, { team: a.team, images: [{ hardwareId: "hw-a", image: b.image }] })).rejects.toThrow(
      /rollout_images_team_id_image_id_fkey/,
    );
    await expect(insertRollout(db, { team: a.team, images: [{ hardwareId: "hw-other", image: a.image }] })).rejects.toMatchObject({
      code: "22023",
    });
    await expect(
      db.query("select gk_public.rollout_create($1, 'x', 'hardware_id_match', '[{\"hardwareId\": 1}]')", [a.team.id]),
    ).rejects.toMatchObject({ code: "22023" });
    // Nothing was left behind by the refused calls.
    expect((await db.query("select count(*)::int as n from gk_public.rollouts where team_id = $1", [a.team.id])).rows[0].n).toBe(0);
  });

  it("a hardware id match reaches only the rollout's team, however many robots share the hardware id", async () => {
    const a = await fleet(3, "hw-shared");
    const b = await fleet(2, "hw-shared");
    const r = await insertRollout(db, { team: a.team, images: [{ hardwareId: "hw-shared", image: a.image }], state: "launched" });
    expect(Object.keys(await robotStates(r.id)).sort()).toEqual(a.robots.map((x) => x.id).sort());
    for (const robot of b.robots) expect((await director(robot)).generation).toBe(1); // from their ECUs only
  });
});

describe("rollouts: deletion", () => {
  it("deleting a team with a launched rollout takes its rollouts, images and robots with it; the image alone is refused", async () => {
    const f = await fleet(2);
    await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], state: "launched" });
    // The image alone cannot go while a rollout maps it.
    await expect(db.query("delete from gk_public.images where id = $1", [f.image.id])).rejects.toMatchObject({ code: "23503" });
    await db.query("delete from gk_public.teams where id = $1", [f.team.id]);
    const left = await db.query(
      `select (select count(*) from gk_public.rollouts where team_id = $1)::int + (select count(*) from gk_public.images where team_id = $1)::int
            + (select count(*) from gk_public.robots where team_id = $1)::int as n`,
      [f.team.id],
    );
    expect(left.rows[0].n).toBe(0);
    // The team's blob prefix purge (this test runs no blob store) is not what this file tests.
    await db.query(
      `select graphile_worker.permanently_fail_jobs(array(select id from graphile_worker.jobs where task_identifier = 'blobs__purge_prefix'),
                                                    'no blob store in this test')`,
    );
  });
});

describe("rollouts: launch", () => {
  it("creates pending rows in one statement and writes no director row; the pending rows make those robots dirty; only a prepared rollout launches", async () => {
    const f = await fleet(5);
    const group = await insertRobotGroup(db, { team: f.team, robots: f.robots.slice(0, 4) });
    const r = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], group });
    await schedule(f.robots); // every robot signed: clean
    expect(await due(f.team)).toEqual([]);
    const before = await directorRows(f.robots);
    const launched = (await db.query("select * from gk_public.rollout_launch($1)", [r.id])).rows[0];
    expect(launched).toMatchObject({ state: "launched", launched_at: expect.any(Date) });
    const states = await robotStates(r.id);
    expect(Object.values(states)).toEqual(["pending", "pending", "pending", "pending"]);
    // Not one director row was written (same row versions), yet the four count as dirty: the
    // sweep's work list and the operator's status have them, and a read signs them.
    expect(await directorRows(f.robots)).toEqual(before);
    expect(await due(f.team)).toEqual(
      f.robots
        .slice(0, 4)
        .map((x) => x.id)
        .sort(),
    );
    expect((await db.query("select dirty_robots::int from gk_public.director_status where team_id = $1", [f.team.id])).rows[0]).toEqual({
      dirty_robots: 4,
    });
    const read = await readDirector(db.pool, testSecrets, f.robots[0].id, f.team.id);
    expect(read?.signed).toBe(true);
    expect(Object.keys(JSON.parse(read?.director.targets ?? "{}").signed.targets)).toEqual([`${f.image.name}-${f.image.version}`]);
    expect((await robotStates(r.id))[f.robots[0].id]).toBe("scheduled");
    expect(await due(f.team)).toEqual(
      f.robots
        .slice(1, 4)
        .map((x) => x.id)
        .sort(),
    );
    expect((await readDirector(db.pool, testSecrets, f.robots[4].id, f.team.id))?.signed).toBe(false);
    await expect(db.query("select gk_public.rollout_launch($1)", [r.id])).rejects.toMatchObject({ code: "55000" });
    await expect(db.query("select gk_public.rollout_launch($1)", [crypto.randomUUID()])).rejects.toMatchObject({ code: "P0002" });
    // A launched rollout's images are fixed.
    await expect(db.query("delete from gk_public.rollout_images where rollout_id = $1", [r.id])).rejects.toMatchObject({ code: "55000" });
  });

  it("a launch superseding scheduled rows writes no director row either; the robots are dirty by the newer pending row", async () => {
    const f = await fleet(3);
    const [image2] = await insertImages(db, { team: f.team, hardwareIds: ["hw-a"] });
    const older = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], state: "launched" });
    await schedule(f.robots);
    expect(Object.values(await robotStates(older.id))).toEqual(["scheduled", "scheduled", "scheduled"]);
    const before = await directorRows(f.robots);
    const newer = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: image2 }], robots: f.robots.slice(0, 2) });
    await db.query("select gk_public.rollout_launch($1)", [newer.id]);
    expect(await directorRows(f.robots)).toEqual(before);
    expect(await due(f.team)).toEqual(
      f.robots
        .slice(0, 2)
        .map((x) => x.id)
        .sort(),
    );
    const read = await readDirector(db.pool, testSecrets, f.robots[0].id, f.team.id);
    expect(Object.keys(JSON.parse(read?.director.targets ?? "{}").signed.targets)).toEqual([`${image2.name}-${image2.version}`]);
    // Cancelling the newer rollout marks both (one statement): robot 0's scheduled row is withdrawn, and
    // robot 1's documents still list the older rollout that its pending row superseded.
    await db.query("select gk_public.rollout_cancel($1)", [newer.id]);
    expect((await directorRows(f.robots)).map((d) => d.dirty)).toEqual(
      (await directorRows(f.robots)).map((d) => f.robots.slice(0, 2).some((x) => x.id === d.robot_id)),
    );
    expect(await due(f.team)).toEqual(
      f.robots
        .slice(0, 2)
        .map((x) => x.id)
        .sort(),
    );
    const served = await readDirector(db.pool, testSecrets, f.robots[1].id, f.team.id);
    expect(JSON.parse(served?.director.targets ?? "{}").signed.targets).toEqual({});
  });

  it("a robot in two rollouts: the newer launch supersedes, the older row is skipped with the reason", async () => {
    const f = await fleet(2);
    const [image2] = await insertImages(db, { team: f.team, hardwareIds: ["hw-a"] });
    const older = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], state: "launched" });
    await schedule(f.robots);
    const newer = await insertRollout(db, {
      team: f.team,
      name: "newer",
      images: [{ hardwareId: "hw-a", image: image2 }],
      robots: [f.robots[0]],
      state: "launched",
    });
    const old = (
      await db.query("select robot_id, state, result from gk_public.rollout_robots where rollout_id = $1 order by robot_id", [older.id])
    ).rows;
    const superseded = old.find((x) => x.robot_id === f.robots[0].id);
    expect(superseded).toMatchObject({ state: "skipped", result: `superseded by rollout newer (${newer.id})` });
    expect(old.find((x) => x.robot_id === f.robots[1].id)?.state).toBe("scheduled");
    // The database itself refuses a second unfinished row for one robot.
    await expect(
      db.query("insert into gk_public.rollout_robots (team_id, rollout_id, robot_id) values ($1, $2, $3)", [
        f.team.id,
        older.id,
        f.robots[0].id,
      ]),
    ).rejects.toMatchObject({ code: "23505" });
  });

  it("scheduling lists the ECUs that need the image and skips a robot that already runs it", async () => {
    const f = await fleet(2);
    await db.query("update gk_public.ecus set installed_image_id = $1 where robot_id = $2", [f.image.id, f.robots[1].id]);
    const r = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], state: "launched" });
    await schedule(f.robots);
    const rows = (await db.query("select robot_id, state, result from gk_public.rollout_robots where rollout_id = $1", [r.id])).rows;
    expect(rows.find((x) => x.robot_id === f.robots[0].id)).toMatchObject({ state: "scheduled", result: null });
    expect(rows.find((x) => x.robot_id === f.robots[1].id)).toMatchObject({
      state: "skipped",
      result: expect.stringMatching(/nothing to install/),
    });
    const targets = (await db.query("select * from gk_private.director_targets($1::uuid[])", [f.robots.map((x) => x.id)])).rows;
    expect(targets.map((t) => [t.robot_id, t.ecu_serial, t.rollout_id])).toEqual(
      expect.arrayContaining([
        [f.robots[0].id, f.ecus[0].serial, r.id],
        [f.robots[1].id, f.ecus[1].serial, null],
      ]),
    );
  });
});

describe("rollouts: events and terminal states", () => {
  it("events are idempotent by event id; all ECUs installed completes the robot and then the rollout", async () => {
    const team = await insertTeam(db);
    const robots = await insertRobots(db, { team, count: 1 });
    const ecus = await insertEcus(db, { robots, perRobot: 2 });
    const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
    const r = await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
    await schedule(robots);
    // Scheduling writes no per-ECU rows; an ECU's row of the rollout appears at its first event.
    const ecuRows = async () =>
      (
        await db.query(
          `select x.ecu_id, x.image_id, x.status from gk_public.rollout_robot_ecus x join gk_public.ecus e on e.id = x.ecu_id
          where x.rollout_id = $1 order by x.status, e.serial`,
          [r.id],
        )
      ).rows;
    expect(await ecuRows()).toEqual([]);
    const id = crypto.randomUUID();
    expect(await event(robots[0], ecus[0].serial, "download_started", id)).toBe("recorded");
    expect(await event(robots[0], ecus[0].serial, "download_started", id)).toBe("duplicate");
    expect(await ecuRows()).toEqual([{ ecu_id: ecus[0].id, image_id: image.id, status: "download_started" }]);
    expect((await robotStates(r.id))[robots[0].id]).toBe("accepted");
    const done = crypto.randomUUID();
    expect(await event(robots[0], ecus[0].serial, "installation_completed", done)).toBe("recorded");
    expect(await processRollouts()).toEqual([]); // one ECU to go
    const generationBefore = (await director(robots[0])).generation;
    expect(await event(robots[0], ecus[1].serial, "installation_completed")).toBe("recorded");
    // The same event again: nothing changes, not even the ECU's status time.
    const ecuBefore = (await db.query("select status, status_at from gk_public.ecus where id = $1", [ecus[0].id])).rows[0];
    expect(await event(robots[0], ecus[0].serial, "installation_completed", done)).toBe("duplicate");
    expect((await db.query("select status, status_at from gk_public.ecus where id = $1", [ecus[0].id])).rows[0]).toEqual(ecuBefore);
    expect((await robotStates(r.id))[robots[0].id]).toBe("completed");
    expect(await ecuRows()).toEqual([
      { ecu_id: ecus[0].id, image_id: image.id, status: "installation_completed" },
      { ecu_id: ecus[1].id, image_id: image.id, status: "installation_completed" },
    ]);
    // Completion does not change what the targets list (the ECUs now run the listed image).
    expect((await director(robots[0])).generation).toBe(generationBefore);
    expect((await db.query("select installed_image_id from gk_public.ecus where robot_id = $1", [robots[0].id])).rows).toEqual([
      { installed_image_id: image.id },
      { installed_image_id: image.id },
    ]);
    expect(await processRollouts()).toEqual([
      expect.objectContaining({ rollout_id: r.id, state: "completed", result: "1 completed, 0 failed, 0 skipped, 0 cancelled" }),
    ]);
    await expect(event(robots[0], "no-such-ecu", "download_started")).rejects.toMatchObject({ code: "P0002" });
    await expect(event(robots[0], ecus[0].serial, "exploded")).rejects.toMatchObject({ code: "22023" });
  });

  it("a failed installation is terminal for the robot; the rollout completes with failures, or fails past its threshold", async () => {
    const f = await fleet(4);
    const tolerant = await insertRollout(db, {
      team: f.team,
      images: [{ hardwareId: "hw-a", image: f.image }],
      robots: f.robots.slice(0, 2),
      state: "launched",
    });
    const strict = await insertRollout(db, {
      team: f.team,
      images: [{ hardwareId: "hw-a", image: f.image }],
      robots: f.robots.slice(2),
      maxFailedRobots: 0,
      state: "launched",
    });
    await schedule(f.robots);
    const before = (await director(f.robots[0])).generation;
    await event(f.robots[0], f.ecus[0].serial, "download_failed", undefined, "disk full");
    // A failure takes the image out of the robot's targets: dirty again.
    expect(await director(f.robots[0])).toEqual({ dirty: true, generation: before + 1 });
    await event(f.robots[1], f.ecus[1].serial, "installation_completed");
    await event(f.robots[2], f.ecus[2].serial, "installation_failed", undefined, "bad signature");
    const ended = await processRollouts();
    expect(ended).toHaveLength(2);
    expect(await rollout(tolerant.id)).toMatchObject({ state: "completed", result: "1 completed, 1 failed, 0 skipped, 0 cancelled" });
    expect(await rollout(strict.id)).toMatchObject({
      state: "failed",
      result: expect.stringMatching(/^1 robots failed, more than the threshold of 0/),
    });
    const rows = (await db.query("select robot_id, state, result from gk_public.rollout_robots where rollout_id = $1", [strict.id])).rows;
    expect(rows.find((x) => x.robot_id === f.robots[2].id)).toMatchObject({
      state: "failed",
      result: `ECU ${f.ecus[2].serial}: installation_failed: bad signature`,
    });
    expect(rows.find((x) => x.robot_id === f.robots[3].id)).toMatchObject({
      state: "cancelled",
      result: expect.stringMatching(/^rollout failed/),
    });
  });

  it("robots that never report fail at the deadline, so a rollout is never launched forever", async () => {
    const f = await fleet(1);
    const r = await insertRollout(db, {
      team: f.team,
      images: [{ hardwareId: "hw-a", image: f.image }],
      robotDeadline: "1 minute",
      state: "launched",
    });
    expect(await processRollouts()).toEqual([]);
    await db.query("update gk_public.rollouts set launched_at = now() - interval '2 minutes' where id = $1", [r.id]);
    expect(await processRollouts()).toEqual([expect.objectContaining({ rollout_id: r.id, state: "completed", timed_out: 1 })]);
    expect((await robotStates(r.id))[f.robots[0].id]).toBe("failed");
  });

  it("a rollout that reached no robot completes at once", async () => {
    const f = await fleet(1);
    // An empty selection is refused outright.
    await expect(insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], robots: [] })).rejects.toMatchObject({
      code: "22023",
    });
    const [other] = await insertImages(db, { team: f.team, hardwareIds: ["hw-nobody"] });
    const empty = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-nobody", image: other }], state: "launched" });
    expect(await processRollouts()).toEqual([expect.objectContaining({ rollout_id: empty.id, state: "completed" })]);
  });
});

describe("rollouts: cancel", () => {
  it("cancels at any point: unfinished robots are cancelled and their targets withdrawn, installed ones stay", async () => {
    const f = await fleet(3);
    const prepared = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }] });
    expect((await db.query("select * from gk_public.rollout_cancel($1, 'not needed')", [prepared.id])).rows[0]).toMatchObject({
      state: "cancelled",
      result: "cancelled: not needed",
    });
    const r = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], state: "launched" });
    await schedule(f.robots.slice(0, 2)); // robot 3 stays pending
    await event(f.robots[0], f.ecus[0].serial, "installation_completed");
    const generations = await Promise.all(f.robots.map(async (x) => (await director(x)).generation));
    await db.query("select gk_public.rollout_cancel($1)", [r.id]);
    expect(await robotStates(r.id)).toEqual({
      [f.robots[0].id]: "completed",
      [f.robots[1].id]: "cancelled",
      [f.robots[2].id]: "cancelled",
    });
    const after = await Promise.all(f.robots.map(async (x) => (await director(x)).generation));
    expect(after[0]).toBe(generations[0]);
    expect(after[1]).toBe(generations[1] + 1);
    // The cancelled robot's targets list what its ECU runs (nothing here), the installed one keeps its image.
    const targets = (await db.query("select robot_id from gk_private.director_targets($1::uuid[])", [f.robots.map((x) => x.id)])).rows;
    expect(targets.map((t) => t.robot_id)).toEqual([f.robots[0].id]);
    await expect(db.query("select gk_public.rollout_cancel($1)", [r.id])).rejects.toMatchObject({ code: "55000" });
  });
});

describe("rollouts: retention of ECU events", () => {
  it("retention_prune__rollout_events deletes events older than the cutoff, oldest first, at most max_rows", async () => {
    const f = await fleet(1);
    for (let i = 0; i < 3; i++) await event(f.robots[0], f.ecus[0].serial, "download_started");
    await db.query(
      "update gk_public.rollout_events e set received_at = now() - (x.n || ' days')::interval from (select id, row_number() over (order by id) as n from gk_public.rollout_events where robot_id = $1) x where x.id = e.id",
      [f.robots[0].id],
    );
    const prune = async (days: number, max: number) =>
      Number(
        (await db.query("select gk_private.retention_prune__rollout_events(now() - $1::interval, $2) as n", [`${days} days`, max])).rows[0]
          .n,
      );
    expect(await prune(1.5, 1)).toBe(1); // the 3-day-old one
    expect(await prune(1.5, 10)).toBe(1); // the 2-day-old one
    expect(await prune(1.5, 10)).toBe(0);
    expect(
      (await db.query("select count(*)::int as n from gk_public.rollout_events where robot_id = $1", [f.robots[0].id])).rows[0].n,
    ).toBe(1);
  });
});

describe("rollouts: the processor reconciler", () => {
  it("rollouts__process ends rollouts and reports them in a typed status", async () => {
    const f = await fleet(1);
    const [nobody] = await insertImages(db, { team: f.team, hardwareIds: ["hw-none"] });
    const r = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-none", image: nobody }], state: "launched" });
    await db.query("select gk_public.activate_reconciler('rollouts__process')");
    await runJobs(db);
    const details = (await db.query("select details from gk_public.activations where task = 'rollouts__process' order by id desc limit 1"))
      .rows[0].details;
    expect(details).toMatchObject({
      failed: 0,
      errors: [],
      ended: expect.arrayContaining([expect.objectContaining({ rollout_id: r.id, state: "completed" })]),
    });
    expect((await rollout(r.id)).state).toBe("completed");
  });
});
