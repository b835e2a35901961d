// `groundskeeper serve --robot-port` as a real process: the robot API is one of its parts,
// starts once a worker has issued the controller certificate it presents (here the test runs
// the jobs with the same CA and master key), and answers a robot over mutual TLS.
import crypto from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretBox } from "../../src/lib/secrets.ts";
import { cliEnv, type LongRunning, spawnCli, tempHome } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { type RobotApiHarness, setupRobotApi } from "./helpers/robot-api.ts";

const db = await createTestDb();
const masterKey = crypto.randomBytes(32);
let h: RobotApiHarness;
let serve: LongRunning;

beforeAll(async () => {
  h = await setupRobotApi(db, { name: "robots-proc", secrets: new SecretBox(masterKey), listen: false });
  const env = cliEnv({
    DATABASE_URL: db.url,
    GROUNDSKEEPER_HOME: path.join(tempHome(), "home"),
    GK_MASTER_KEY: masterKey.toString("base64"),
    GK_CA_NAME: "robots-proc",
  });
  serve = spawnCli(["serve", "--port", "0", "--robot-port", "0"], env);
});

afterAll(async () => {
  await serve?.stop();
  await h?.close();
});

describe("groundskeeper serve --robot-port", () => {
  it("starts the robot API, which answers a robot with its certificate", { timeout: 120_000 }, async () => {
    const m = await serve.waitFor(/Robot API: (https:\/\/\S+)/, 90_000);
    h.url = m[1]!;
    const [robot] = await insertRobots(db, { team: await insertTeam(db) });
    const creds = await h.enroll(robot!.id);
    const r = await h.request(creds, "GET", "/robot/v1/certificate");
    expect(r).toMatchObject({ status: 200, body: { certificate_id: creds.certificateId } });
    expect(await h.request(null, "GET", "/robot/v1/certificate").catch((e: Error) => e)).toBeInstanceOf(Error);
  });
});
