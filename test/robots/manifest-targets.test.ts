// A verified manifest compared with the director's targets, and refused when replayed, through the
// real robot API over mutual TLS with manifests signed by securesystemslib
// (helpers/sign_manifest.py). The robot learns what to install from its own signed targets.json
// (GET /robot/v1/director/targets.json), installs it, and reports it: a report of the rollout's
// image completes the robot like an installation_completed event (rollouts_record_event); a
// report of an image the director never assigned is recorded as a discrepancy and completes
// nothing; an older or repeated manifest is refused and changes nothing; another robot's ECU is
// refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { peerConnectionString } from "../../src/peers/peer-role.ts";
import { ecuReportsSection, LATEST_DISCREPANCIES } from "../../src/robots/status.ts";
import { createTestDb } from "../helpers/db.ts";
import {
  type EcuRow,
  type ImageRow,
  insertEcus,
  insertImages,
  insertRobots,
  insertRollout,
  insertTeam,
} from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { needs } from "../helpers/requirements.ts";
import { installedImage, nextReportCounter, pythonSignedManifest, registerEcuKeys, reportTime } from "./helpers/manifests.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "./helpers/robot-api.ts";

const db = await createTestDb();
const api = await httpGraphql(db);
let h: RobotApiHarness;
let team: { id: string };
let images: ImageRow[];

interface Robot {
  id: string;
  creds: RobotCredentials;
  /** The primary first. */
  ecus: EcuRow[];
}

/** A robot with two ECUs of hw-a, both running images[0] (what the inventory says). */
async function robotWithEcus(): Promise<Robot> {
  const [r] = await insertRobots(db, { team });
  const ecus = await insertEcus(db, { robots: [r!], perRobot: 2, hardwareId: "hw-a", installedImage: images[0] });
  return { id: r!.id, creds: await h.enroll(r!.id), ecus };
}

const asTarget = (i: ImageRow) => ({ filepath: `${i.name}-${i.version}`, length: Number(i.length), sha256: i.sha256, sha512: i.sha512 });

/** What the robot's signed director targets tell each ECU to install, as it would read them. */
async function assignedTargets(robot: Robot): Promise<Record<string, ReturnType<typeof asTarget>>> {
  const res = await h.request(robot.creds, "GET", "/robot/v1/director/targets.json");
  expect(res.status).toBe(200);
  const out: Record<string, ReturnType<typeof asTarget>> = {};
  for (const [name, t] of Object.entries(res.body.signed.targets as Record<string, any>)) {
    for (const serial of Object.keys(t.custom.ecuIdentifiers)) {
      out[serial] = { filepath: name, length: t.length, sha256: t.hashes.sha256, sha512: t.hashes.sha512 };
    }
  }
  return out;
}

/** A manifest signed by securesystemslib, its ECUs' keys registered; `bodies` per serial. */
async function signed(robot: Robot, bodies: Record<string, Record<string, unknown>>) {
  const { manifest, keys } = pythonSignedManifest(robot.ecus[0].serial, bodies);
  await registerEcuKeys(db, robot.id, keys);
  return manifest;
}
const post = (robot: Robot, manifest: unknown) => h.request(robot.creds, "POST", "/robot/v1/manifest", manifest);

const rolloutState = async (rolloutId: string, robotId: string) =>
  (await db.query("select state, result from gk_public.rollout_robots where rollout_id = $1 and robot_id = $2", [rolloutId, robotId]))
    .rows[0];
const count = async (sql: string, params: unknown[] = []) => (await db.query(sql, params)).rows[0].n as number;
const events = (robotId: string) => count("select count(*)::int as n from gk_public.rollout_events where robot_id = $1", [robotId]);
const manifests = (robotId: string) => count("select count(*)::int as n from gk_public.robot_manifests where robot_id = $1", [robotId]);
/** Everything a manifest may change for a robot, to compare before and after a refusal. */
async function robotState(robot: Robot) {
  const q = async (sql: string) => (await db.query(sql, [robot.id])).rows;
  return {
    manifests: await manifests(robot.id),
    events: await events(robot.id),
    reports: await q(
      `select v.* from gk_public.ecu_version_reports v join gk_public.ecus e on e.id = v.ecu_id where e.robot_id = $1 order by e.serial`,
    ),
    ecus: await q("select serial, installed_image_id, status, status_at from gk_public.ecus where robot_id = $1 order by serial"),
    rollouts: await q("select rollout_id, state, result, updated_at from gk_public.rollout_robots where robot_id = $1 order by rollout_id"),
  };
}

/** The version reports of a manifest as src/robots/manifest.ts hands them to robot_manifest_accepted. */
function reportsOf(manifest: { signed: Record<string, unknown> }) {
  return Object.entries(manifest.signed.ecu_version_manifests as Record<string, { signed: any }>).map(([serial, { signed: r }]) => ({
    serial,
    counter: r.report_counter,
    time: r.timeserver_time,
    filepath: r.installed_image.filepath,
    length: r.installed_image.fileinfo.length,
    sha256: r.installed_image.fileinfo.hashes.sha256 ?? null,
    sha512: r.installed_image.fileinfo.hashes.sha512 ?? null,
  }));
}

/** Until some session of this database waits for a lock (the robot API's, behind the test's transaction). */
async function waitForLockWait(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const n = await count(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (n > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the robot API's request never waited for the open transaction");
}

beforeAll(async () => {
  h = await setupRobotApi(db, { name: "robots-manifest-targets" });
  team = await insertTeam(db);
  images = await insertImages(db, { team, count: 3, hardwareIds: ["hw-a"] });
});
afterAll(() => h?.close());

describe.runIf(needs("securesystemslib"))("manifests against the director's targets", () => {
  it("a report of the rollout's image on every ECU completes the robot, through the event path, once", async () => {
    const robot = await robotWithEcus();
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [robot],
      state: "launched",
    });
    const assigned = await assignedTargets(robot);
    const [primary, secondary] = robot.ecus.map((e) => e.serial);
    expect(assigned).toEqual({ [primary]: asTarget(images[1]), [secondary]: asTarget(images[1]) });

    // The primary installed it, the secondary still runs what it ran: the robot is not done.
    const first = await post(
      robot,
      await signed(robot, { [primary]: installedImage(assigned[primary]), [secondary]: installedImage(asTarget(images[0])) }),
    );
    expect(first.status).toBe(201);
    expect(first.body.ecus).toEqual([
      expect.objectContaining({ serial: primary, verdict: "matches", rollout_id: rollout.id }),
      expect.objectContaining({ serial: secondary, verdict: "pending", rollout_id: rollout.id }),
    ]);
    expect(await rolloutState(rollout.id, robot.id)).toMatchObject({ state: "accepted" });

    // Both report the rollout's image: completed, as by installation_completed events.
    const second = await post(
      robot,
      await signed(robot, { [primary]: installedImage(assigned[primary]), [secondary]: installedImage(assigned[secondary]) }),
    );
    expect(second.status).toBe(201);
    expect(second.body.ecus.map((e: { verdict: string }) => e.verdict)).toEqual(["matches", "matches"]);
    expect(await rolloutState(rollout.id, robot.id)).toEqual({ state: "completed", result: "installed on every ECU" });
    const ecus = (await db.query("select installed_image_id, status from gk_public.ecus where robot_id = $1 order by serial", [robot.id]))
      .rows;
    expect(ecus).toEqual([
      { installed_image_id: images[1].id, status: "installation_completed" },
      { installed_image_id: images[1].id, status: "installation_completed" },
    ]);
    const recorded = await db.query(
      `select e.serial, v.type, v.rollout_id from gk_public.rollout_events v join gk_public.ecus e on e.id = v.ecu_id
        where v.robot_id = $1 order by e.serial`,
      [robot.id],
    );
    expect(recorded.rows).toEqual([
      { serial: primary, type: "installation_completed", rollout_id: rollout.id },
      { serial: secondary, type: "installation_completed", rollout_id: rollout.id },
    ]);

    // A newer manifest saying the same: accepted, it matches what the targets list now, and
    // records no event again (the ECU's event of this rollout and image has one id).
    const third = await post(
      robot,
      await signed(robot, { [primary]: installedImage(assigned[primary]), [secondary]: installedImage(assigned[secondary]) }),
    );
    expect(third.status).toBe(201);
    expect(third.body.ecus.map((e: { verdict: string }) => e.verdict)).toEqual(["matches", "matches"]);
    expect(await events(robot.id)).toBe(2);
    expect(await assignedTargets(robot)).toEqual({ [primary]: asTarget(images[1]), [secondary]: asTarget(images[1]) });
  });

  it("an image the director never assigned is a discrepancy: recorded, visible in GraphQL and status, completes nothing", async () => {
    const robot = await robotWithEcus();
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [robot],
      state: "launched",
    });
    const assigned = await assignedTargets(robot);
    const [primary, secondary] = robot.ecus.map((e) => e.serial);
    // The primary reports another image of the team; the secondary the assigned name and length
    // with other bytes.
    const forged = { ...assigned[secondary], sha256: "0".repeat(64), sha512: undefined };
    const res = await post(
      robot,
      await signed(robot, { [primary]: installedImage(asTarget(images[2])), [secondary]: installedImage(forged) }),
    );
    expect(res.status).toBe(201);
    expect(res.body.ecus).toEqual([
      expect.objectContaining({ serial: primary, verdict: "discrepancy" }),
      expect.objectContaining({ serial: secondary, verdict: "discrepancy" }),
    ]);
    expect(res.body.ecus[0].detail).toContain(`${images[2].name}-${images[2].version}`);
    expect(await rolloutState(rollout.id, robot.id)).toMatchObject({ state: "scheduled" });
    expect(await events(robot.id)).toBe(0);
    const ecus = (await db.query("select installed_image_id, status from gk_public.ecus where robot_id = $1", [robot.id])).rows;
    expect(ecus).toEqual([
      { installed_image_id: images[0].id, status: null },
      { installed_image_id: images[0].id, status: null },
    ]);

    const gql = await api.exec(
      "viewer",
      `query($ecu: UUID!) { allEcuVersionReports(condition: { ecuId: $ecu }) { nodes { verdict detail reportedFilepath reportCounter expectedImageId rolloutId ecuByTeamIdAndEcuId { serial robotId } } } }`,
      { ecu: robot.ecus[0].id },
    );
    expect(gql.errors).toBeUndefined();
    expect(gql.data.allEcuVersionReports.nodes).toEqual([
      expect.objectContaining({
        verdict: "discrepancy",
        reportedFilepath: `${images[2].name}-${images[2].version}`,
        expectedImageId: images[1].id,
        rolloutId: rollout.id,
        ecuByTeamIdAndEcuId: { serial: primary, robotId: robot.id },
      }),
    ]);
    const status = await ecuReportsSection.collect(db.pool);
    expect(status.discrepancies).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ robot_id: robot.id, ecu_serial: primary, reported: `${images[2].name}-${images[2].version}` }),
      ]),
    );
    expect(ecuReportsSection.render(status)).toContain(primary);
    // However many reports there are, status reads the latest discrepancies from their index.
    const c = await db.pool.connect();
    try {
      await c.query("begin; set local enable_seqscan = off");
      const plan = JSON.stringify((await c.query(`explain (format json) ${LATEST_DISCREPANCIES}`)).rows[0]["QUERY PLAN"]);
      await c.query("rollback");
      expect(plan).toMatch(/ecu_version_reports_discrepancy_idx/);
    } finally {
      c.release();
    }
  });

  it("an older or repeated manifest is refused (409) and changes nothing; a report time off the clock is refused (422)", async () => {
    const robot = await robotWithEcus();
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [robot],
      state: "launched",
    });
    const assigned = await assignedTargets(robot);
    const [primary, secondary] = robot.ecus.map((e) => e.serial);
    // Signed first (lower counters), posted later: it would complete the robot.
    const older = await signed(robot, { [primary]: installedImage(assigned[primary]), [secondary]: installedImage(assigned[secondary]) });
    const olderKeys = (
      await db.query(
        "select k.ecu_id, k.public_key from gk_public.ecu_keys k join gk_public.ecus e on e.id = k.ecu_id where e.robot_id = $1",
        [robot.id],
      )
    ).rows;
    const current = await signed(robot, {
      [primary]: installedImage(asTarget(images[0])),
      [secondary]: installedImage(asTarget(images[0])),
    });
    expect(await post(robot, current)).toMatchObject({ status: 201 });
    const before = await robotState(robot);
    expect(before.rollouts).toMatchObject([{ state: "scheduled" }]);

    // Repeated.
    const repeated = await post(robot, current);
    expect(repeated).toMatchObject({ status: 409, body: { error: expect.stringMatching(/replayed.*report_counter/) } });
    // Older: every signature verifies (its keys put back), its counters are below the accepted ones.
    for (const k of olderKeys) await db.query("update gk_public.ecu_keys set public_key = $2 where ecu_id = $1", [k.ecu_id, k.public_key]);
    expect(await post(robot, older)).toMatchObject({ status: 409, body: { error: expect.stringMatching(/replayed/) } });
    expect(await robotState(robot)).toEqual(before);

    // A higher counter with a time before the accepted report's.
    const backwards = await signed(robot, {
      [primary]: { ...installedImage(assigned[primary]), timeserver_time: reportTime(-60) },
      [secondary]: installedImage(assigned[secondary]),
    });
    expect(await post(robot, backwards)).toMatchObject({ status: 409, body: { error: expect.stringMatching(/before the last accepted/) } });
    // Times further from the server's clock than the skew allows, either way (an hour back on an
    // ECU with no accepted report yet: on this one it would be before the last accepted).
    const newcomer = await robotWithEcus();
    for (const [who, offset] of [
      [robot, 3600],
      [newcomer, -3600],
    ] as const) {
      const skewed = await signed(who, {
        [who.ecus[0].serial]: installedImage(asTarget(images[0])),
        [who.ecus[1].serial]: { ...installedImage(asTarget(images[0])), timeserver_time: reportTime(offset) },
      });
      expect(await post(who, skewed)).toMatchObject({ status: 422, body: { error: expect.stringMatching(/from the server's clock/) } });
    }
    expect(await manifests(newcomer.id)).toBe(0);
    // A report without a counter is not a version report.
    const bare = await signed(robot, { [primary]: { ...installedImage(assigned[primary]), report_counter: undefined } });
    expect(await post(robot, bare)).toMatchObject({ status: 400, body: { error: expect.stringMatching(/report_counter/) } });
    expect(await robotState(robot)).toEqual(before);
    expect(await rolloutState(rollout.id, robot.id)).toMatchObject({ state: "scheduled" });

    // A copy posted while the first is being recorded (its transaction open here) waits for it,
    // and is then refused as a replay: the two never both pass the check.
    const fresh = await signed(robot, { [primary]: installedImage(asTarget(images[0])) });
    const c = await db.pool.connect();
    try {
      await c.query("begin");
      await c.query("select gk_private.robot_manifest_accepted($1, $2, $3, $4)", [
        robot.id,
        team.id,
        fresh,
        JSON.stringify(reportsOf(fresh)),
      ]);
      const copy = post(robot, fresh);
      await waitForLockWait();
      await c.query("commit");
      expect(await copy).toMatchObject({ status: 409, body: { error: expect.stringMatching(/replayed/) } });
    } finally {
      c.release();
    }
    expect(await manifests(robot.id)).toBe(before.manifests + 1);
  });

  it("a report without timeserver_time (as aktualizr sends) is accepted once: its counter alone refuses the replay", async () => {
    const robot = await robotWithEcus();
    const [primary, secondary] = robot.ecus.map((e) => e.serial);
    const timeless = { timeserver_time: undefined, report_counter: nextReportCounter() };
    const manifest = await signed(robot, {
      [primary]: { ...installedImage(asTarget(images[0])), ...timeless },
      [secondary]: { ...installedImage(asTarget(images[0])), timeserver_time: undefined },
    });
    expect(JSON.stringify(manifest)).not.toContain("timeserver_time");
    const first = await post(robot, manifest);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.ecus.map((e: { verdict: string }) => e.verdict)).toEqual(["matches", "matches"]);
    const { rows } = await db.query(
      `select v.report_counter::int as counter, v.reported_at = v.received_at as at_receipt
         from gk_public.ecu_version_reports v join gk_public.ecus e on e.id = v.ecu_id where e.robot_id = $1 and e.serial = $2`,
      [robot.id, primary],
    );
    expect(rows).toEqual([{ counter: timeless.report_counter, at_receipt: true }]);
    const before = await robotState(robot);
    expect(await post(robot, manifest)).toMatchObject({ status: 409, body: { error: expect.stringMatching(/replayed.*report_counter/) } });
    expect(await robotState(robot)).toEqual(before);
  });

  it("another robot's ECU is refused, and that robot's state is untouched", async () => {
    const mine = await robotWithEcus();
    const theirs = await robotWithEcus();
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [theirs],
      state: "launched",
    });
    const assigned = await assignedTargets(theirs);
    const theirSecondary = theirs.ecus[1].serial;
    // Their ECU's report, signed with its registered key, inside my manifest signed by my primary.
    const { manifest, keys } = pythonSignedManifest(mine.ecus[0].serial, {
      [mine.ecus[0].serial]: installedImage(asTarget(images[0])),
      [theirSecondary]: installedImage(assigned[theirSecondary]),
    });
    await registerEcuKeys(db, mine.id, { [mine.ecus[0].serial]: keys[mine.ecus[0].serial] });
    await registerEcuKeys(db, theirs.id, { [theirSecondary]: keys[theirSecondary] });
    const theirsBefore = await robotState(theirs);
    const mineBefore = await robotState(mine);
    expect(await post(mine, manifest)).toMatchObject({ status: 422, body: { error: `ECU ${theirSecondary} is not an ECU of this robot` } });
    // Their whole manifest, posted with my certificate.
    const whole = await signed(theirs, {
      [theirs.ecus[0].serial]: installedImage(assigned[theirs.ecus[0].serial]),
      [theirSecondary]: installedImage(assigned[theirSecondary]),
    });
    expect(await post(mine, whole)).toMatchObject({ status: 422, body: { error: /is not an ECU of this robot|not this robot's primary/ } });
    expect(await robotState(theirs)).toEqual(theirsBefore);
    expect(await robotState(mine)).toEqual(mineBefore);
    expect(await rolloutState(rollout.id, theirs.id)).toMatchObject({ state: "scheduled" });
    // Posted by its own robot it is accepted and completes it.
    expect(await post(theirs, whole)).toMatchObject({ status: 201 });
    expect(await rolloutState(rollout.id, theirs.id)).toMatchObject({ state: "completed" });
  });

  it("the robot API's role stores a manifest only through the replay check", async () => {
    const robot = await robotWithEcus();
    const peer = createPool(peerConnectionString(db.url), 1);
    try {
      await expect(
        peer.query("select * from gk_private.robot_manifest_received($1, $2, true, '{}')", [robot.id, team.id]),
      ).rejects.toMatchObject({ code: "42501" });
      await expect(peer.query("update gk_public.ecu_version_reports set report_counter = 1")).rejects.toMatchObject({ code: "42501" });
    } finally {
      await peer.end();
    }
    expect(await manifests(robot.id)).toBe(0);
  });

  it("the report counter never goes back, whoever writes (a constraint of ecu_version_reports)", async () => {
    const robot = await robotWithEcus();
    const res = await post(
      robot,
      await signed(robot, { [robot.ecus[0].serial]: { ...installedImage(asTarget(images[0])), report_counter: nextReportCounter() } }),
    );
    expect(res.status).toBe(201);
    await expect(
      db.query("update gk_public.ecu_version_reports set report_counter = report_counter - 1 where ecu_id = $1", [robot.ecus[0].id]),
    ).rejects.toThrow(/report counter/);
    await expect(
      db.query("update gk_public.ecu_version_reports set report_counter = 0 where ecu_id = $1", [robot.ecus[0].id]),
    ).rejects.toThrow();
  });
  it("a robot moved to another team keeps its ECUs' counters; a team delete takes them", async () => {
    const robot = await robotWithEcus();
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [robot],
      state: "launched",
    });
    await assignedTargets(robot);
    const current = await signed(robot, { [robot.ecus[0].serial]: installedImage(asTarget(images[0])) });
    expect(await post(robot, current)).toMatchObject({ status: 201, body: { ecus: [{ verdict: "pending", rollout_id: rollout.id }] } });
    const other = await insertTeam(db);
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [robot.id, other.id]);
    const kept = await db.query("select team_id, report_counter, verdict from gk_public.ecu_version_reports where ecu_id = $1", [
      robot.ecus[0].id,
    ]);
    expect(kept.rows).toEqual([
      {
        team_id: other.id,
        report_counter: String((current.signed.ecu_version_manifests as any)[robot.ecus[0].serial].signed.report_counter),
        verdict: "pending",
      },
    ]);
    // Under the new team, with a new certificate, the same manifest is still a replay.
    const moved = { ...robot, creds: await h.enroll(robot.id) };
    expect(await post(moved, current)).toMatchObject({ status: 409 });
    // Last in this file: the team delete leaves a purge job that no test here runs.
    await db.query("delete from gk_public.teams where id = $1", [other.id]);
    expect(
      await count("select count(*)::int as n from gk_public.ecu_version_reports where ecu_id = any($1)", [robot.ecus.map((e) => e.id)]),
    ).toBe(0);
  });
});
