// A real Uptane-style client over the robot API: tuf-js's Updater fetching one robot's director
// metadata through mutual TLS (the robot's own certificate from our CA, src/peers/robot-api.ts),
// through a launch, ECU events, a cancel and a root rotation; every state also checked by
// securesystemslib (helpers/verify_director.py). Robots see only their own director and ECUs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signNextRoot } from "../../src/rollouts/director-keys.ts";
import { createTestDb } from "../helpers/db.ts";
import {
  type EcuRow,
  type ImageRow,
  insertEcus,
  insertImages,
  insertRobots,
  insertRollout,
  insertTeam,
  type RobotRow,
} from "../helpers/fixtures/index.ts";
import { testSecrets } from "../helpers/jobs.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "../robots/helpers/robot-api.ts";
import { RobotClient, verifyWithSecuresystemslib } from "./helpers/director-client.ts";

const db = await createTestDb();
let api: RobotApiHarness;

interface Robot {
  row: RobotRow;
  ecu: EcuRow;
  creds: RobotCredentials;
}
let team: { id: string };
let images: ImageRow[];
let a: Robot;
let b: Robot; // same team
let stranger: Robot; // another team

async function robotOf(teamId: string): Promise<Robot> {
  const [row] = await insertRobots(db, { team: teamId });
  const [ecu] = await insertEcus(db, { robots: [row] });
  return { row, ecu, creds: await api.enroll(row.id) };
}
const root = async (r: Robot, version: number) => (await api.request(r.creds, "GET", `/robot/v1/director/${version}.root.json`)).body;
const events = (r: Robot, list: { id?: string; ecuSerial?: string; type: string; description?: string }[]) =>
  api.request(r.creds, "POST", "/robot/v1/events", {
    events: list.map((e) => ({ id: crypto.randomUUID(), ecuSerial: r.ecu.serial, ...e })),
  });

beforeAll(async () => {
  api = await setupRobotApi(db, { name: "rollouts" });
  team = await insertTeam(db);
  images = await insertImages(db, { team, count: 2, hardwareIds: ["hw-a"] });
  a = await robotOf(team.id);
  b = await robotOf(team.id);
  stranger = await robotOf((await insertTeam(db)).id);
});
afterAll(() => api?.close());

describe("director metadata through the robot API, checked by tuf-js and securesystemslib", () => {
  let client: RobotClient;

  it("bootstrap: the robot trusts its team's root v1 and finds nothing to install", async () => {
    const r1 = await root(a, 1);
    expect(r1.signed).toMatchObject({ _type: "root", version: 1, consistent_snapshot: false });
    client = new RobotClient(api, a.creds, JSON.stringify(r1));
    expect(await client.assignments()).toEqual({});
    await client.saveRoots(1);
    verifyWithSecuresystemslib(client, 1);
  });

  it("launch: the robot's targets list exactly its ECU's image; events move it to completed, once", async () => {
    const v1 = `${images[0].name}-${images[0].version}`;
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[0] }],
      robots: [a.row],
      state: "launched",
    });
    expect(await client.assignments()).toEqual({ [a.ecu.serial]: v1 });
    verifyWithSecuresystemslib(client, 1);
    const started = crypto.randomUUID();
    expect((await events(a, [{ id: started, type: "download_started" }])).body).toEqual({
      results: [{ id: started, outcome: "recorded" }],
    });
    expect((await events(a, [{ id: started, type: "download_started" }])).body).toEqual({
      results: [{ id: started, outcome: "duplicate" }],
    });
    expect((await events(a, [{ type: "installation_completed" }])).status).toBe(200);
    const row = (await db.query("select state from gk_public.rollout_robots where rollout_id = $1", [rollout.id])).rows[0];
    expect(row.state).toBe("completed");
    expect(await client.assignments()).toEqual({ [a.ecu.serial]: v1 });
  });

  it("cancel: a cancelled update is withdrawn, the targets go back to what the ECU runs", async () => {
    const rollout = await insertRollout(db, {
      team,
      images: [{ hardwareId: "hw-a", image: images[1] }],
      robots: [a.row],
      state: "launched",
    });
    const before = client.trusted("timestamp").signed.version;
    expect(await client.assignments()).toEqual({ [a.ecu.serial]: `${images[1].name}-${images[1].version}` });
    await db.query("select gk_public.rollout_cancel($1)", [rollout.id]);
    expect(await client.assignments()).toEqual({ [a.ecu.serial]: `${images[0].name}-${images[0].version}` });
    expect(client.trusted("timestamp").signed.version).toBe(before + 2);
  });

  it("root rotation: new root and online keys; the client walks to root v2 and accepts the re-signed metadata", async () => {
    const c = await db.pool.connect();
    try {
      expect(await signNextRoot(c, testSecrets, team.id, { newKeys: true })).toBe(2);
    } finally {
      c.release();
    }
    expect(await client.assignments()).toEqual({ [a.ecu.serial]: `${images[0].name}-${images[0].version}` });
    expect(client.trusted("root").signed.version).toBe(2);
    const oldOnline = (await root(a, 1)).signed.roles.timestamp.keyids[0];
    expect(client.trusted("timestamp").signatures[0].keyid).not.toBe(oldOnline);
    await client.saveRoots(2);
    verifyWithSecuresystemslib(client, 2);
  });

  it("a robot reaches only its own director and ECUs: not another robot's, not another team's", async () => {
    // The stranger's root is its own team's, which robot A's client does not trust.
    const theirs = await root(stranger, 1);
    expect(theirs.signed.roles.root.keyids).not.toEqual((await root(a, 1)).signed.roles.root.keyids);
    // Robot B reports for robot A's ECU serial: not found, and A's ECU is untouched.
    const status = (await db.query("select status, status_at from gk_public.ecus where id = $1", [a.ecu.id])).rows[0];
    const refused = await events(b, [{ ecuSerial: a.ecu.serial, type: "installation_failed" }]);
    expect(refused.status).toBe(404);
    expect((await events(stranger, [{ ecuSerial: a.ecu.serial, type: "installation_failed" }])).status).toBe(404);
    expect((await db.query("select status, status_at from gk_public.ecus where id = $1", [a.ecu.id])).rows[0]).toEqual(status);
    // No route takes a robot or team id: paths naming one are simply unknown.
    expect((await api.request(b.creds, "GET", `/robot/v1/director/${a.row.id}/targets.json`)).status).toBe(404);
    // No certificate, no metadata.
    await expect(api.request(null, "GET", "/robot/v1/director/timestamp.json")).rejects.toThrow();
  });

  it("bad events are refused with a one-line reason and change nothing", async () => {
    const before = (await db.query("select count(*)::int as n from gk_public.rollout_events")).rows[0].n;
    const cases = [
      {},
      { events: [] },
      { events: [{ id: "not-a-uuid", ecuSerial: b.ecu.serial, type: "download_started" }] },
      { events: [{ id: crypto.randomUUID(), ecuSerial: b.ecu.serial, type: "exploded" }] },
      { events: Array.from({ length: 101 }, () => ({ id: crypto.randomUUID(), ecuSerial: b.ecu.serial, type: "download_started" })) },
    ];
    for (const body of cases) {
      const r = await api.request(b.creds, "POST", "/robot/v1/events", body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/^bad events: /);
    }
    // One unknown ECU in a batch: the whole batch is refused.
    const mixed = await events(b, [{ type: "download_started" }, { ecuSerial: "nope", type: "download_started" }]);
    expect(mixed.status).toBe(404);
    expect((await db.query("select count(*)::int as n from gk_public.rollout_events")).rows[0].n).toBe(before);
    expect((await api.request(b.creds, "GET", "/robot/v1/director/0.root.json")).status).toBe(404);
  });
});
