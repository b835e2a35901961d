// The robot API over real mutual TLS: node's https client with robot certificates issued through
// the certificate lifecycle by the local CA, and openssl s_client for a certificate of another
// CA. Identity comes from the certificate and the database on every request: a revoked, unknown
// or moved robot's certificate is refused on the very next request (same connection), and a
// robot can only ever read and write its own rows.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_MAX_BYTES } from "../../src/robots/robot-routes.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertEcus, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { needs } from "../helpers/requirements.ts";
import { installedImage, nodeSignedManifest, registerEcuKeys } from "./helpers/manifests.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "./helpers/robot-api.ts";

const db = await createTestDb();
let h: RobotApiHarness;
let teamA: string;
let teamB: string;
let a: { id: string; creds: RobotCredentials };
let b: { id: string; creds: RobotCredentials };
let other: { id: string; creds: RobotCredentials };

beforeAll(async () => {
  h = await setupRobotApi(db);
  teamA = (await insertTeam(db, { name: "robots-a" })).id;
  teamB = (await insertTeam(db, { name: "robots-b" })).id;
  const [ra, rb] = await insertRobots(db, { team: teamA, count: 2 });
  const [ro] = await insertRobots(db, { team: teamB });
  a = { id: ra!.id, creds: await h.enroll(ra!.id) };
  b = { id: rb!.id, creds: await h.enroll(rb!.id) };
  other = { id: ro!.id, creds: await h.enroll(ro!.id) };
});

afterAll(async () => {
  await h?.close();
});

describe("robot API", () => {
  it("hands a robot its own certificate, and records the download", async () => {
    const r = await h.request(a.creds, "GET", "/robot/v1/certificate");
    expect(r.status).toBe(200);
    expect(r.headers["cache-control"]).toBe("no-store");
    expect(r.body.certificate_id).toBe(a.creds.certificateId);
    expect(r.body.certificate_pem).toBe(a.creds.certPem);
    expect(r.body.ca_certificate_pem).toBe(h.caPem);
    const { rows } = await db.query("select downloaded_at is not null as downloaded from gk_public.certificates where id = $1", [
      a.creds.certificateId,
    ]);
    expect(rows[0].downloaded).toBe(true);
    const rb = await h.request(b.creds, "GET", "/robot/v1/certificate");
    expect(rb.body.certificate_id).toBe(b.creds.certificateId);
  });

  it("stores a manifest under the calling robot and its team, whatever the body claims", async () => {
    // Signed by robot a's ECU, claiming to be robot b's of team B (signatures: manifest.test.ts).
    const [ecu] = await insertEcus(db, { robots: [{ id: a.id, team_id: teamA }] });
    const { manifest, keys } = nodeSignedManifest(
      ecu!.serial,
      { [ecu!.serial]: installedImage({ filepath: "fw-1.0.0", length: 10, sha256: "ab".repeat(32) }) },
      { robot_id: b.id, team_id: teamB },
    );
    await registerEcuKeys(db, a.id, keys);
    const r = await h.request(a.creds, "POST", "/robot/v1/manifest", manifest);
    expect(r).toMatchObject({ status: 201, body: { valid: true } });
    const { rows } = await db.query("select robot_id, team_id, valid from gk_public.robot_manifests order by id");
    expect(rows).toEqual([{ robot_id: a.id, team_id: teamA, valid: true }]);
  });

  it("refuses bad manifests with a clear error and stores nothing", async () => {
    const before = (await db.query("select count(*)::int as n from gk_public.robot_manifests")).rows[0].n;
    expect(await h.request(a.creds, "POST", "/robot/v1/manifest", "[1,2]")).toMatchObject({ status: 400, body: { error: /JSON object/ } });
    expect(await h.request(a.creds, "POST", "/robot/v1/manifest", "{nope")).toMatchObject({ status: 400, body: { error: /not JSON/ } });
    const huge = { signed: { pad: "x".repeat(MANIFEST_MAX_BYTES) }, signatures: [1] };
    expect(await h.request(a.creds, "POST", "/robot/v1/manifest", huge)).toMatchObject({ status: 413 });
    expect(await h.request(a.creds, "GET", "/robot/v1/nothing-here")).toMatchObject({ status: 404 });
    expect((await db.query("select count(*)::int as n from gk_public.robot_manifests")).rows[0].n).toBe(before);
  });

  it("refuses a certificate sent to revocation at once, on the connection it already has, the robot staying", async () => {
    const [r] = await insertRobots(db, { team: teamA });
    const creds = await h.enroll(r!.id);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await h.request(creds, "GET", "/robot/v1/certificate", undefined, agent)).status).toBe(200);
      await db.query("update gk_public.certificates set status = 'revoking', revocation_reason = 'keyCompromise' where id = $1", [
        creds.certificateId,
      ]);
      expect(await h.request(creds, "GET", "/robot/v1/certificate", undefined, agent)).toMatchObject({ status: 403 });
    } finally {
      agent.destroy();
    }
  });

  it("refuses a deleted robot's certificate at once, on the connection it already has", async () => {
    const [r] = await insertRobots(db, { team: teamA });
    const creds = await h.enroll(r!.id);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await h.request(creds, "GET", "/robot/v1/certificate", undefined, agent)).status).toBe(200);
      // The operator compromises the robot: no job has run, the CA has not revoked yet, no CRL.
      await db.query("delete from gk_public.robots where id = $1", [r!.id]);
      expect(await h.request(creds, "GET", "/robot/v1/certificate", undefined, agent)).toMatchObject({ status: 403 });
      expect(await h.request(creds, "POST", "/robot/v1/manifest", { signed: {}, signatures: [1] }, agent)).toMatchObject({ status: 403 });
    } finally {
      agent.destroy();
    }
    await h.runJobs();
    const { rows } = await db.query("select status from gk_public.certificates where id = $1", [creds.certificateId]);
    expect(rows[0].status).toBe("revoked");
    expect((await h.request(creds, "GET", "/robot/v1/certificate")).status).toBe(403);
  });

  it("refuses a certificate of our CA that the database does not know, even when its CN names a robot", async () => {
    const key = h.newKey();
    const forged = await h.ca.issue({
      commonName: b.id,
      profile: "robot",
      publicKeyPem: key.publicKeyPem,
      notAfter: new Date(Date.now() + 3600_000),
    });
    expect(await h.request({ keyPem: key.keyPem, certPem: forged.pem! }, "GET", "/robot/v1/certificate")).toMatchObject({ status: 403 });
  });

  it("refuses certificates of other profiles and of robots that moved team", async () => {
    // A provisioning credential's client_auth certificate, of the same team: not a robot.
    const { rows } = await db.query("select id from gk_public.create_provisioning_credential($1, 'prov')", [teamA]);
    await h.runJobs();
    const bundle = await db.query(
      `select c.pem, c.id from gk_public.certificates c where c.provisioning_credential_id = $1 and c.profile = 'client_auth'`,
      [rows[0].id],
    );
    const key = await db.query("select sealed_key from gk_private.certificate_private_keys where certificate_id = $1", [bundle.rows[0].id]);
    const { testSecrets } = await import("../helpers/jobs.ts");
    const { certificateKeyContext } = await import("../../src/certificates/parked-keys.ts");
    const keyPem = testSecrets.open(key.rows[0].sealed_key, certificateKeyContext(bundle.rows[0].id)).toString("utf8");
    expect(await h.request({ keyPem, certPem: bundle.rows[0].pem }, "GET", "/robot/v1/certificate")).toMatchObject({ status: 403 });
    // The other team's robot is fine in its own team; moved into team A, its old certificate no longer is.
    expect((await h.request(other.creds, "GET", "/robot/v1/certificate")).status).toBe(200);
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [other.id, teamA]);
    expect(await h.request(other.creds, "GET", "/robot/v1/certificate")).toMatchObject({ status: 403 });
  });

  it("refuses a handshake without a client certificate", async () => {
    await expect(h.request(null, "GET", "/robot/v1/certificate")).rejects.toThrow();
  });

  it.runIf(needs("openssl"))("refuses, at the handshake, a client certificate of another CA (openssl s_client)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-robots-"));
    try {
      const ok = (cmd: string) => expect(spawnSync("openssl", cmd.split(" "), { cwd: dir }).status).toBe(0);
      const ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
      ok(`req -x509 ${ec} -keyout ca.key -out ca.pem -subj /CN=Other-CA -days 1`);
      ok(`req ${ec} -keyout robot.key -out robot.csr -subj /CN=${a.id}/OU=robot`);
      ok("x509 -req -in robot.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out robot.pem -days 1");
      fs.writeFileSync(path.join(dir, "ours.pem"), h.caPem);
      // Asynchronous: the listener runs in this process and must answer meanwhile.
      const out = await new Promise<string>((resolve) => {
        const args = `s_client -connect 127.0.0.1:${h.api!.port} -cert robot.pem -key robot.key -CAfile ours.pem -ign_eof`;
        const p = spawn("openssl", args.split(" "), { cwd: dir });
        let text = "";
        p.stdout.on("data", (d) => (text += d));
        p.stderr.on("data", (d) => (text += d));
        const timer = setTimeout(() => p.kill(), 10_000);
        p.on("close", () => {
          clearTimeout(timer);
          resolve(text);
        });
        p.stdin.end("GET /robot/v1/certificate HTTP/1.0\r\n\r\n");
      });
      expect(out).toMatch(/Verify return code: 0/); // it did reach our server and trusted it
      expect(out).not.toMatch(/HTTP\/1\.[01] \d{3}/);
      // TLS 1.3: the server refuses the client certificate after the client's Finished, by closing
      // (an alert, or the connection closed or reset before openssl reads one: errno 104).
      expect(out).toMatch(/alert unknown ca|unexpected eof|errno=104/i);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
