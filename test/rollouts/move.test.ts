// A robot moved to another team with everything it has (ECUs with keys and reported images, a
// group, a finished and a launched rollout, a prepared rollout selecting it, signed director
// metadata) in one UPDATE: its ECUs move, the old team's groups, selections and unfinished
// rollout rows end, its director metadata is signed again under the new team's director (read by
// tuf-js over the robot API, checked by securesystemslib), and it can move back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import {
  type EcuRow,
  type ImageRow,
  insertEcus,
  insertImages,
  insertRobotGroup,
  insertRobots,
  insertRollout,
  insertTeam,
  type RobotRow,
} from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "../robots/helpers/robot-api.ts";
import { RobotClient, verifyWithSecuresystemslib } from "./helpers/director-client.ts";

const db = await createTestDb();
const gql = await httpGraphql(db);
let api: RobotApiHarness;
let from: { id: string; name: string };
let to: { id: string; name: string };
let fromImages: ImageRow[];
let toImages: ImageRow[];
let robot: RobotRow;
let other: RobotRow;
let ecus: EcuRow[];
let creds: RobotCredentials;

const q = async (sql: string, params: unknown[] = []) => (await db.query(sql, params)).rows;
const target = (i: ImageRow) => `${i.name}-${i.version}`;

/** A fresh client of the robot trusting its (current) team's root v1, with new credentials. */
async function clientOfTeam(): Promise<RobotClient> {
  creds = await api.enroll(robot.id);
  const bootstrap = new RobotClient(api, creds, "{}");
  const client = new RobotClient(api, creds, JSON.stringify(await bootstrap.root(1)));
  await client.saveRoots(1);
  return client;
}
/** The team whose director root's online key signed what the client trusts. */
async function signedBy(client: RobotClient): Promise<string> {
  const keyid = client.trusted("timestamp").signatures[0].keyid;
  const rows = await q("select team_id from gk_public.director_repositories where online_key_id = $1", [keyid]);
  return rows[0]?.team_id;
}

beforeAll(async () => {
  api = await setupRobotApi(db, { name: "move" });
  from = await insertTeam(db, { name: "move-from" });
  to = await insertTeam(db, { name: "move-to" });
  fromImages = await insertImages(db, { team: from, count: 2, hardwareIds: ["hw-a"] });
  toImages = await insertImages(db, { team: to, count: 1, hardwareIds: ["hw-a"] });
  [robot, other] = await insertRobots(db, { team: from, count: 2 });
  ecus = await insertEcus(db, { robots: [robot], perRobot: 2, installedImage: fromImages[0] });
  await insertEcus(db, { robots: [other] });
  await db.query("insert into gk_public.ecu_keys (ecu_id, team_id, public_key) values ($1, $2, $3)", [
    ecus[0].id,
    from.id,
    "ab".repeat(32),
  ]);
  await insertRobotGroup(db, { team: from, robots: [robot, other] });
});
afterAll(() => api?.close());

describe("moving a robot to another team", () => {
  let launched: { id: string };
  let finished: { id: string };
  let prepared: { id: string };

  it("before: the robot reads its targets, signed by its team, and reports an event", async () => {
    finished = await insertRollout(db, {
      team: from,
      images: [{ hardwareId: "hw-a", image: fromImages[1] }],
      robots: [robot],
      state: "launched",
    });
    await db.query("select gk_public.rollout_cancel($1)", [finished.id]);
    launched = await insertRollout(db, {
      team: from,
      images: [{ hardwareId: "hw-a", image: fromImages[1] }],
      robots: [robot],
      state: "launched",
    });
    prepared = await insertRollout(db, { team: from, images: [{ hardwareId: "hw-a", image: fromImages[1] }], robots: [robot, other] });
    const client = await clientOfTeam();
    expect(await client.assignments()).toEqual({ [ecus[0].serial]: target(fromImages[1]), [ecus[1].serial]: target(fromImages[1]) });
    expect(await signedBy(client)).toBe(from.id);
    const started = await api.request(creds, "POST", "/robot/v1/events", {
      events: [{ id: crypto.randomUUID(), ecuSerial: ecus[0].serial, type: "download_started" }],
    });
    expect(started.status).toBe(200);
    expect(await q("select state from gk_public.rollout_robots where rollout_id = $1", [launched.id])).toEqual([{ state: "accepted" }]);
  });

  it("one UPDATE moves it: ECUs and keys go with it, the old team's groups, selections and unfinished rows end", async () => {
    const before = (await q("select generation from gk_public.robot_directors where robot_id = $1", [robot.id]))[0];
    expect(await q("select 1 from gk_public.director_repositories where team_id = $1", [to.id])).toEqual([]); // made when needed
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [robot.id, to.id]);
    expect(
      await q("select team_id, installed_image_id, status from gk_public.ecus where robot_id = $1 order by serial", [robot.id]),
    ).toEqual([
      { team_id: to.id, installed_image_id: null, status: "download_started" },
      { team_id: to.id, installed_image_id: null, status: null },
    ]);
    expect(await q("select team_id from gk_public.ecu_keys where ecu_id = $1", [ecus[0].id])).toEqual([{ team_id: to.id }]);
    expect(await q("select robot_id from gk_public.robot_group_members")).toEqual([{ robot_id: other.id }]);
    expect(await q("select robot_id from gk_public.rollout_selected_robots where rollout_id = $1", [prepared.id])).toEqual([
      { robot_id: other.id },
    ]);
    // The unfinished row ends; the finished one is history and keeps its (the rollout's) team.
    expect(
      await q("select rollout_id, team_id, state, result from gk_public.rollout_robots where robot_id = $1 order by created_at", [
        robot.id,
      ]),
    ).toEqual([
      { rollout_id: finished.id, team_id: from.id, state: "cancelled", result: expect.stringMatching(/cancelled/) },
      { rollout_id: launched.id, team_id: from.id, state: "cancelled", result: "robot moved to team move-to" },
    ]);
    expect(await q("select team_id from gk_public.rollout_events where robot_id = $1", [robot.id])).toEqual([{ team_id: from.id }]);
    // Director metadata: the new team's, dirty with a new generation; the old documents are gone.
    const d = (await q("select team_id, dirty, generation from gk_public.robot_directors where robot_id = $1", [robot.id]))[0];
    expect(d).toEqual({ team_id: to.id, dirty: true, generation: expect.any(String) });
    expect(BigInt(d.generation)).toBeGreaterThan(BigInt(before.generation));
    expect(await q("select robot_id from gk_public.robot_director_documents where robot_id = $1", [robot.id])).toEqual([]);
    expect((await api.request(creds, "GET", "/robot/v1/director/timestamp.json")).status).toBe(403);
  });

  it("the old team's rollout completes on the next processor run", async () => {
    await db.query("select gk_public.activate_reconciler('rollouts__process')");
    await api.runJobs();
    expect(await q("select state from gk_public.rollouts where id = $1", [launched.id])).toEqual([{ state: "completed" }]);
  });

  it("its director metadata is signed by the new team's director (made as for a new robot of it), and lists the new team's rollout", async () => {
    const client = await clientOfTeam();
    expect(await client.assignments()).toEqual({});
    expect(await signedBy(client)).toBe(to.id);
    verifyWithSecuresystemslib(client, 1);
    await insertRollout(db, { team: to, images: [{ hardwareId: "hw-a", image: toImages[0] }], robots: [robot], state: "launched" });
    expect(await client.assignments()).toEqual({ [ecus[0].serial]: target(toImages[0]), [ecus[1].serial]: target(toImages[0]) });
    verifyWithSecuresystemslib(client, 1);
  });

  it("moving it back works too: signed by its first team again, the second team's row ended", async () => {
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [robot.id, from.id]);
    expect(await q("select distinct team_id from gk_public.ecus where robot_id = $1", [robot.id])).toEqual([{ team_id: from.id }]);
    expect(await q("select state, result from gk_public.rollout_robots where robot_id = $1 and team_id = $2", [robot.id, to.id])).toEqual([
      { state: "cancelled", result: "robot moved to team move-from" },
    ]);
    const client = await clientOfTeam();
    expect(await client.assignments()).toEqual({});
    expect(await signedBy(client)).toBe(from.id);
    verifyWithSecuresystemslib(client, 1);
  });
});

describe("moving a robot through GraphQL", () => {
  const MOVE = `mutation($id: UUID!, $team: UUID!) { updateRobotByRowId(input: { rowId: $id, robotPatch: { teamId: $team } }) { robot { teamId } } }`;

  it("an admin moves a robot with its ECUs; an unknown team is refused with a clear error and nothing changes; a viewer may not", async () => {
    const a = await insertTeam(db);
    const b = await insertTeam(db);
    const [r] = await insertRobots(db, { team: a });
    await insertEcus(db, { robots: [r] });
    const moved = await gql.exec("admin", MOVE, { id: r.id, team: b.id });
    expect(moved.errors).toBeUndefined();
    expect(moved.data.updateRobotByRowId.robot).toEqual({ teamId: b.id });
    const missing = crypto.randomUUID();
    const refused = await gql.exec("admin", MOVE, { id: r.id, team: missing });
    expect(refused.errors?.[0]).toMatchObject({ message: `team ${missing} not found`, extensions: { code: "NOT_FOUND" } });
    expect((await gql.exec("viewer", MOVE, { id: r.id, team: a.id })).errors?.[0]).toMatchObject({
      extensions: { code: "PERMISSION_DENIED" },
    });
    expect(await q("select team_id from gk_public.robots where id = $1", [r.id])).toEqual([{ team_id: b.id }]);
    expect(await q("select team_id from gk_public.ecus where robot_id = $1", [r.id])).toEqual([{ team_id: b.id }]);
  });
});

describe("a launched rollout's selection", () => {
  it("loses a robot that is deleted or moved; an operator still cannot edit it", async () => {
    const a = await insertTeam(db);
    const b = await insertTeam(db);
    const [image] = await insertImages(db, { team: a, hardwareIds: ["hw-a"] });
    const rs = await insertRobots(db, { team: a, count: 3 });
    await insertEcus(db, { robots: rs });
    const rollout = await insertRollout(db, { team: a, images: [{ hardwareId: "hw-a", image }], robots: rs, state: "launched" });
    await db.query("delete from gk_public.robots where id = $1", [rs[0].id]);
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [rs[1].id, b.id]);
    expect(await q("select robot_id from gk_public.rollout_selected_robots where rollout_id = $1", [rollout.id])).toEqual([
      { robot_id: rs[2].id },
    ]);
    await expect(db.query("delete from gk_public.rollout_selected_robots where rollout_id = $1", [rollout.id])).rejects.toMatchObject({
      code: "55000",
    });
  });
});

describe("several robots in one statement", () => {
  it("moves every robot the UPDATE names, each with its ECUs, and ends each one's row", async () => {
    const a = await insertTeam(db);
    const b = await insertTeam(db, { name: "move-many" });
    const [image] = await insertImages(db, { team: a, hardwareIds: ["hw-a"] });
    const rs = await insertRobots(db, { team: a, count: 3 });
    await insertEcus(db, { robots: rs, perRobot: 2 });
    const rollout = await insertRollout(db, { team: a, images: [{ hardwareId: "hw-a", image }], robots: rs, state: "launched" });
    await db.query("update gk_public.robots set team_id = $2 where id = any($1::uuid[])", [[rs[0].id, rs[1].id], b.id]);
    expect(
      await q("select team_id, count(*)::int as n from gk_public.ecus where robot_id = any($1::uuid[]) group by 1", [[rs[0].id, rs[1].id]]),
    ).toEqual([{ team_id: b.id, n: 4 }]);
    expect(
      await q("select robot_id, state, result from gk_public.rollout_robots where rollout_id = $1 order by robot_id", [rollout.id]),
    ).toEqual(
      [...rs]
        .sort((x, y) => (x.id < y.id ? -1 : 1))
        .map((r) =>
          r.id === rs[2].id
            ? { robot_id: r.id, state: "pending", result: null }
            : { robot_id: r.id, state: "skipped", result: "robot moved to team move-many" },
        ),
    );
  });
});
