// Manifests are stored only once their signatures verify (src/robots/manifest.ts), through the
// real robot API over mutual TLS: a manifest signed by securesystemslib (an independent
// implementation) against the ECUs' keys registered by an admin; tampered, wrongly signed,
// unregistered or foreign ECUs refused with a clear error and nothing recorded; keys registered
// by an admin through GraphQL.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { type EcuRow, insertEcus, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { needs } from "../helpers/requirements.ts";
import { nodeSignedManifest, pythonSignedManifest, registerEcuKeys } from "./helpers/manifests.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "./helpers/robot-api.ts";

const db = await createTestDb();
const api = await httpGraphql(db);
let h: RobotApiHarness;
let robot: { id: string; creds: RobotCredentials };
let ecus: EcuRow[];

const manifests = async () => (await db.query("select count(*)::int as n from gk_public.robot_manifests")).rows[0].n as number;
const post = (body: unknown) => h.request(robot.creds, "POST", "/robot/v1/manifest", body);
const bodies = () => ({
  [ecus[0].serial]: { installed_image: { filepath: "fw-1.0.0", fileinfo: { length: 10, hashes: { sha256: "ab".repeat(32) } } } },
  [ecus[1].serial]: { installed_image: { filepath: "cam-2.0.0", fileinfo: { length: 20, hashes: { sha256: "cd".repeat(32) } } } },
});

beforeAll(async () => {
  h = await setupRobotApi(db, { name: "robots-manifest" });
  const team = await insertTeam(db);
  const [r] = await insertRobots(db, { team });
  ecus = await insertEcus(db, { robots: [r!], perRobot: 2 }); // the first is the primary
  robot = { id: r!.id, creds: await h.enroll(r!.id) };
});

afterAll(async () => {
  await h?.close();
});

describe("robot manifests", () => {
  it.runIf(needs("securesystemslib"))("stores a manifest signed by securesystemslib with the ECUs' registered keys", async () => {
    const { manifest, keys } = pythonSignedManifest(ecus[0].serial, bodies());
    await registerEcuKeys(db, robot.id, keys);
    const before = await manifests();
    expect(await post(manifest)).toMatchObject({ status: 201, body: { valid: true } });
    expect(await manifests()).toBe(before + 1);
    // The same manifest with one byte changed under a signature: refused, nothing recorded.
    const tampered = structuredClone(manifest);
    (tampered.signed.ecu_version_manifests as Record<string, { signed: { installed_image: { filepath: string } } }>)[
      ecus[1].serial
    ].signed.installed_image.filepath = "cam-6.6.6";
    expect(await post(tampered)).toMatchObject({ status: 422, body: { error: /not signed by the primary ECU/ } });
    expect(await manifests()).toBe(before + 1);
  });

  it("an admin registers an ECU's key through GraphQL (createEcuKey); a viewer cannot; a malformed key is refused", async () => {
    const CREATE = `mutation($ecu: UUID!, $team: UUID!, $key: String!) {
      createEcuKey(input: { ecuKey: { ecuId: $ecu, teamId: $team, publicKey: $key } }) { ecuKey { ecuId publicKey } }
    }`;
    const { manifest, keys } = nodeSignedManifest(ecus[0].serial, bodies());
    await db.query("delete from gk_public.ecu_keys where ecu_id = any($1)", [ecus.map((e) => e.id)]);
    const asViewer = await api.exec("viewer", CREATE, { ecu: ecus[0].id, team: ecus[0].team_id, key: keys[ecus[0].serial] });
    expect(asViewer.errors?.[0].message).toMatch(/permission denied/);
    const bad = await api.exec("admin", CREATE, { ecu: ecus[0].id, team: ecus[0].team_id, key: "not-hex" });
    expect(bad.errors?.[0].message).toMatch(/ecu_keys_public_key_check/);
    for (const e of ecus) {
      const r = await api.exec("admin", CREATE, { ecu: e.id, team: e.team_id, key: keys[e.serial] });
      expect(r.errors).toBeUndefined();
      expect(r.data.createEcuKey.ecuKey).toEqual({ ecuId: e.id, publicKey: keys[e.serial] });
    }
    expect(await post(manifest)).toMatchObject({ status: 201, body: { valid: true } });
  });

  it("refuses a version report not signed by its ECU's key, or a vehicle manifest not signed by the primary", async () => {
    const { manifest, keys } = nodeSignedManifest(ecus[0].serial, bodies());
    await registerEcuKeys(db, robot.id, keys);
    const before = await manifests();
    expect(await post(manifest)).toMatchObject({ status: 201, body: { valid: true } });
    // Every signature is genuine, but the secondary's key registered is another one.
    const other = nodeSignedManifest(ecus[0].serial, bodies());
    await registerEcuKeys(db, robot.id, { [ecus[0].serial]: keys[ecus[0].serial], [ecus[1].serial]: other.keys[ecus[1].serial] });
    expect(await post(manifest)).toMatchObject({
      status: 422,
      body: { error: `the version report of ECU ${ecus[1].serial} is not signed by its key` },
    });
    // Signed by a key the robot does not have registered for its primary.
    expect(await post(other.manifest)).toMatchObject({ status: 422, body: { error: /not signed by the primary ECU/ } });
    expect(await manifests()).toBe(before + 1);
  });

  it("refuses unknown, unregistered or misnamed ECUs, a secondary as primary, and what is not a manifest", async () => {
    const before = await manifests();
    await db.query("delete from gk_public.ecu_keys where ecu_id = $1", [ecus[1].id]);
    const m = nodeSignedManifest(ecus[0].serial, bodies());
    await registerEcuKeys(db, robot.id, { [ecus[0].serial]: m.keys[ecus[0].serial] });
    expect(await post(m.manifest)).toMatchObject({ status: 422, body: { error: `ECU ${ecus[1].serial} has no registered key` } });
    const foreign = nodeSignedManifest(ecus[0].serial, { ...bodies(), "not-mine": bodies()[ecus[1].serial] });
    await registerEcuKeys(db, robot.id, foreign.keys);
    expect(await post(foreign.manifest)).toMatchObject({ status: 422, body: { error: "ECU not-mine is not an ECU of this robot" } });
    const secondary = nodeSignedManifest(ecus[1].serial, bodies());
    await registerEcuKeys(db, robot.id, secondary.keys);
    expect(await post(secondary.manifest)).toMatchObject({ status: 422, body: { error: /not this robot's primary ECU/ } });
    const misnamed = nodeSignedManifest(ecus[0].serial, bodies());
    await registerEcuKeys(db, robot.id, misnamed.keys);
    const reports = misnamed.manifest.signed.ecu_version_manifests as Record<string, unknown>;
    reports.elsewhere = reports[ecus[1].serial];
    expect(await post(misnamed.manifest)).toMatchObject({ status: 422 });
    expect(await post({ signed: {}, signatures: [{ keyid: "k", sig: "s" }] })).toMatchObject({
      status: 400,
      body: { error: /not an Uptane manifest/ },
    });
    expect(await post({ hello: "world" })).toMatchObject({ status: 400 });
    expect(await manifests()).toBe(before);
  });
});
