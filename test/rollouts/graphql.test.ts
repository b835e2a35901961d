// Rollouts through the admin API: an admin creates, launches and cancels; a viewer reads but is
// refused every mutation; another team's robots are refused with the constraint's name and
// nothing is written.
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertEcus, insertImages, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";

const db = await createTestDb();
const api = await httpGraphql(db);

const CREATE = `mutation($team: UUID!, $images: JSON!, $robots: [UUID]) {
  rolloutCreate(input: { teamId: $team, name: "spring", targetType: "selected_robots", images: $images, robotIds: $robots, maxFailedRobots: 1 }) {
    result { rowId state maxFailedRobots }
  }
}`;
const LAUNCH = `mutation($id: UUID!) { rolloutLaunch(input: { rolloutId: $id }) { result { rowId state launchedAt } } }`;
const CANCEL = `mutation($id: UUID!) { rolloutCancel(input: { rolloutId: $id, reason: "wrong image" }) { result { state result } } }`;

async function setup() {
  const team = await insertTeam(db);
  const robots = await insertRobots(db, { team, count: 2 });
  await insertEcus(db, { robots });
  const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
  return { team, robots, images: [{ hardwareId: "hw-a", imageId: image.id }] };
}

describe("rollouts through GraphQL", () => {
  it("an admin creates, launches and cancels; robots and their states are readable, by a viewer too", async () => {
    const s = await setup();
    const created = await api.exec("admin", CREATE, { team: s.team.id, images: s.images, robots: s.robots.map((r) => r.id) });
    expect(created.errors).toBeUndefined();
    const id = created.data.rolloutCreate.result.rowId;
    expect(created.data.rolloutCreate.result).toMatchObject({ state: "prepared", maxFailedRobots: 1 });
    const launched = await api.exec("admin", LAUNCH, { id });
    expect(launched.data.rolloutLaunch.result).toMatchObject({ state: "launched", launchedAt: expect.any(String) });
    const seen = await api.exec(
      "viewer",
      `query($id: UUID!) {
        rolloutByRowId(rowId: $id) { state }
        allRolloutRobots(condition: { rolloutId: $id }) { totalCount nodes { state } }
      }`,
      { id },
    );
    expect(seen.errors).toBeUndefined();
    expect(seen.data).toEqual({
      rolloutByRowId: { state: "launched" },
      allRolloutRobots: { totalCount: 2, nodes: [{ state: "pending" }, { state: "pending" }] },
    });
    const cancelled = await api.exec("admin", CANCEL, { id });
    expect(cancelled.data.rolloutCancel.result).toEqual({ state: "cancelled", result: "cancelled: wrong image" });
    const again = await api.exec("admin", CANCEL, { id });
    expect(again.errors?.[0]).toMatchObject({ extensions: { code: "WRONG_STATE" } });
  });

  it("a viewer may not create, launch or cancel", async () => {
    const s = await setup();
    const refused = await api.exec("viewer", CREATE, { team: s.team.id, images: s.images, robots: [s.robots[0].id] });
    expect(refused.errors?.[0]).toMatchObject({ extensions: { code: "PERMISSION_DENIED" } });
    const made = await api.exec("admin", CREATE, { team: s.team.id, images: s.images, robots: [s.robots[0].id] });
    const id = made.data.rolloutCreate.result.rowId;
    expect((await api.exec("viewer", LAUNCH, { id })).errors?.[0]).toMatchObject({ extensions: { code: "PERMISSION_DENIED" } });
    expect((await api.exec("viewer", CANCEL, { id })).errors?.[0]).toMatchObject({ extensions: { code: "PERMISSION_DENIED" } });
  });

  it("a rollout to another team's robots is refused and writes nothing", async () => {
    const s = await setup();
    const other = await setup();
    const before = (await db.query("select count(*)::int as n from gk_public.rollouts")).rows[0].n;
    const refused = await api.exec("admin", CREATE, { team: s.team.id, images: s.images, robots: other.robots.map((r) => r.id) });
    expect(refused.errors?.[0]).toMatchObject({
      extensions: { code: "CONSTRAINT_VIOLATION", constraint: "rollout_selected_robots_team_id_robot_id_fkey" },
    });
    expect((await db.query("select count(*)::int as n from gk_public.rollouts")).rows[0].n).toBe(before);
  });
});
