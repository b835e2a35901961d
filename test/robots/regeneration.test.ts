// Robot certificates regenerated lazily (sql/630_robots_certificates.sql), through the real robot
// API, the real local CA and real workers: what a certificate encodes (read back with openssl),
// renames marking robots dirty in one statement, the read that regenerates (once, under 20
// concurrent reads), a regeneration racing a newer change, the sweep in batches, the grace
// period, the export guard, and compromise staying immediate.
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { takeCertificateKey } from "../../src/certificates/parked-keys.ts";
import { spkiOfPem } from "../../src/robots/certificate.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertEcus, insertRobotGroup, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { testSecrets } from "../helpers/jobs.ts";
import { openssl } from "../helpers/openssl.ts";
import { type RobotApiHarness, type RobotCredentials, setupRobotApi } from "./helpers/robot-api.ts";

const db = await createTestDb();
let h: RobotApiHarness;

beforeAll(async () => {
  h = await setupRobotApi(db, { name: "robots-regen" });
});

afterAll(async () => {
  await h?.close();
});

async function robotWithCert(teamName?: string): Promise<{ teamId: string; robotId: string; creds: RobotCredentials }> {
  const team = await insertTeam(db, teamName ? { name: teamName } : {});
  const [robot] = await insertRobots(db, { team, prefix: "bot" });
  return { teamId: team.id, robotId: robot!.id, creds: await h.enroll(robot!.id) };
}

const state = async (robotId: string) =>
  (
    await db.query(
      "select certificate_generation::int as generation, certificate_dirty_since is not null as dirty from gk_public.robots where id = $1",
      [robotId],
    )
  ).rows[0];

const subjectOf = (pem: string) =>
  openssl(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", "{c.pem}"], { "c.pem": pem }).out.trim();

describe("robot certificates, lazily", () => {
  it("encode the robot's team name and its own name in the subject", async () => {
    const { robotId, creds } = await robotWithCert("encoded-team");
    const name = (await db.query("select name from gk_public.robots where id = $1", [robotId])).rows[0].name;
    expect(subjectOf(creds.certPem)).toBe(`subject=OU=name=${name},O=encoded-team,OU=robot,CN=${robotId}`);
  });

  it("encode the hardware ids of its ECUs and its groups; adding an ECU, joining, leaving or renaming a group marks it dirty", async () => {
    const team = await insertTeam(db, { name: "fleet-attrs" });
    const [robot] = await insertRobots(db, { team });
    await insertEcus(db, { robots: [robot!], perRobot: 2, hardwareId: "hw-arm" });
    await insertRobotGroup(db, { team, name: "canary", robots: [robot!] });
    // ECU changes also enqueue the rollouts area's director sweep, which is not under test here.
    const noDirectorSweep = () => db.query("select graphile_worker.remove_job('rollouts__regenerate')");
    await noDirectorSweep();
    const creds = await h.enroll(robot!.id);
    expect(subjectOf(creds.certPem)).toBe(
      `subject=OU=group=canary,OU=hw=hw-arm,OU=name=${robot!.name},O=fleet-attrs,OU=robot,CN=${robot!.id}`,
    );
    expect(await state(robot!.id)).toEqual({ generation: 0, dirty: false });
    await db.query("insert into gk_public.ecus (team_id, robot_id, serial, hardware_id) values ($1, $2, 'extra-1', 'hw-x86')", [
      team.id,
      robot!.id,
    ]);
    expect(await state(robot!.id)).toEqual({ generation: 1, dirty: true });
    const other = await insertRobotGroup(db, { team, name: "beta", robots: [robot!] });
    await db.query("update gk_public.robot_groups set name = 'beta-2' where id = $1", [other.id]);
    await db.query("delete from gk_public.robot_group_members where group_id = $1", [other.id]);
    expect(await state(robot!.id)).toEqual({ generation: 4, dirty: true });
    // An ECU's status changing (rollout events) is not something the certificate encodes.
    await db.query("update gk_public.ecus set status_at = now() where robot_id = $1", [robot!.id]);
    expect((await state(robot!.id)).generation).toBe(4);
    const subject = (await db.query("select gk_private.robot_certificate_subject($1) as s", [robot!.id])).rows[0].s;
    expect(subject.units).toEqual([`name=${robot!.name}`, "hw=hw-arm", "hw=hw-x86", "group=canary"]);
    await noDirectorSweep();
  });

  it("a team rename marks every robot of the team with a live certificate dirty, in one statement", async () => {
    const team = await insertTeam(db, { name: "bulk-team" });
    const robots = await insertRobots(db, { team, count: 40 });
    const bystander = await robotWithCert();
    await db.query(
      `insert into gk_public.certificates (owner_team_id, robot_id, profile, public_key_pem, not_after)
       select team_id, id, 'robot', $2, now() + interval '1 day' from gk_public.robots where team_id = $1 and name not like '%-40'`,
      [team.id, h.newKey().publicKeyPem],
    );
    await db.query("update gk_public.teams set name = 'bulk-team-renamed' where id = $1", [team.id]);
    const { rows } = await db.query(
      "select count(*) filter (where certificate_dirty_since is not null and certificate_generation = 1)::int as dirty, count(*)::int as n from gk_public.robots where team_id = $1",
      [team.id],
    );
    expect(rows[0]).toEqual({ dirty: 39, n: robots.length }); // the one without a certificate has nothing to regenerate
    expect(await state(bystander.robotId)).toEqual({ generation: 0, dirty: false });
    // Renaming to the same name changes nothing.
    await db.query("update gk_public.teams set name = name where id = $1", [team.id]);
    expect(
      (await db.query("select max(certificate_generation)::int as g from gk_public.robots where team_id = $1", [team.id])).rows[0].g,
    ).toBe(1);
  });

  it("a dirty robot gets a new certificate at its next read; the old one is superseded once that is handed over", async () => {
    const { teamId, robotId, creds } = await robotWithCert("before-rename");
    await db.query("update gk_public.teams set name = 'after-rename' where id = $1", [teamId]);
    expect(await state(robotId)).toEqual({ generation: 1, dirty: true });
    const worker = await h.startWorker();
    try {
      const r = await h.request(creds, "GET", "/robot/v1/certificate");
      expect(r.status).toBe(200);
      expect(r.body.certificate_id).not.toBe(creds.certificateId);
      expect(subjectOf(r.body.certificate_pem)).toContain("O=after-rename");
      // Same key: the robot keeps its private key.
      expect(spkiOfPem(r.body.certificate_pem)).toBe(spkiOfPem(creds.certPem));
      expect(await state(robotId)).toEqual({ generation: 1, dirty: false });
      // The old certificate is refused at once; the new one works.
      expect((await h.request(creds, "GET", "/robot/v1/certificate")).status).toBe(403);
      const fresh = { keyPem: creds.keyPem, certPem: r.body.certificate_pem };
      expect(await h.request(fresh, "GET", "/robot/v1/certificate")).toMatchObject({
        status: 200,
        body: { certificate_id: r.body.certificate_id },
      });
    } finally {
      await worker.stop();
    }
    await h.runJobs();
    const old = await db.query("select status, revocation_reason from gk_public.certificates where id = $1", [creds.certificateId]);
    expect(old.rows[0]).toEqual({ status: "revoked", revocation_reason: "superseded" });
  });

  it("20 concurrent reads of a dirty robot request one certificate and all get it", async () => {
    const { robotId, creds } = await robotWithCert();
    // Connections established (and authenticated) first, so every read is in flight before the
    // replacement is handed over (which refuses the old certificate).
    const agents = Array.from({ length: 20 }, () => new https.Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      await Promise.all(agents.map((a) => h.request(creds, "GET", "/robot/v1/certificate", undefined, a)));
      await db.query("update gk_public.robots set name = name || '-renamed' where id = $1", [robotId]);
      const reads = Promise.all(agents.map((a) => h.request(creds, "GET", "/robot/v1/certificate", undefined, a)));
      // The worker starts only once the replacement is requested and every read has had time to
      // pass authentication: the reads wait for it.
      for (let i = 0; i < 100; i++) {
        const n = (
          await db.query("select count(*)::int as n from gk_public.certificates where replaces_certificate_id = $1", [creds.certificateId])
        ).rows[0].n;
        if (n > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 500));
      const worker = await h.startWorker();
      const answers = await reads.finally(() => worker.stop());
      const { rows } = await db.query("select id from gk_public.certificates where replaces_certificate_id = $1", [creds.certificateId]);
      expect(rows).toHaveLength(1);
      expect(answers.map((a) => `${a.status} ${a.body.certificate_id}`)).toEqual(answers.map(() => `200 ${rows[0].id}`));
    } finally {
      for (const a of agents) a.destroy();
    }
  });

  it("a regeneration that raced a newer change leaves the robot dirty, and the next read regenerates again", async () => {
    const { robotId, creds } = await robotWithCert();
    await db.query("update gk_public.robots set name = name || '-v1' where id = $1", [robotId]);
    const first = (await db.query("select certificate_id from gk_private.robots_certificate_replacements(array[$1::uuid])", [robotId]))
      .rows[0].certificate_id;
    // A newer change before the first replacement is issued.
    await db.query("update gk_public.robots set name = name || '-v2' where id = $1", [robotId]);
    await h.runJobs();
    const issued = await db.query("select status, subject_generation::int as g from gk_public.certificates where id = $1", [first]);
    expect(issued.rows[0]).toEqual({ status: "issued", g: 1 });
    expect(await state(robotId)).toEqual({ generation: 2, dirty: true });
    const worker = await h.startWorker();
    try {
      const r = await h.request(creds, "GET", "/robot/v1/certificate");
      expect(r.status).toBe(200);
      expect(r.body.certificate_id).not.toBe(first);
      expect(subjectOf(r.body.certificate_pem)).toMatch(/-v1-v2,/);
    } finally {
      await worker.stop();
    }
    expect(await state(robotId)).toEqual({ generation: 2, dirty: false });
    await h.runJobs();
    // Handing over the second replacement superseded the whole chain: the original and the first.
    const { rows } = await db.query("select status from gk_public.certificates where id = any($1::uuid[]) order by created_at", [
      [creds.certificateId, first],
    ]);
    expect(rows.map((x) => x.status)).toEqual(["revoked", "revoked"]);
  });

  it("the sweep requests replacements in batches for robots that do not come by, with a typed status", async () => {
    // Earlier tests left dirty robots: sweep them first, so the batches below are this test's.
    await db.query("select graphile_worker.add_job('robots__regenerate', '{}'::json)");
    await h.runJobs();
    const team = await insertTeam(db, { name: "swept" });
    const robots = await insertRobots(db, { team, count: 25 });
    for (const r of robots) await db.query("select gk_public.request_certificate($1, $2)", [r.id, h.newKey().publicKeyPem]);
    await h.runJobs();
    await db.query("update gk_public.teams set name = 'swept-renamed' where id = $1", [team.id]);
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"max_robots": 10}}'::json)`);
    await h.runJobs();
    const act = await db.query(
      "select status, details from gk_public.activations where task = 'robots__regenerate' order by started_at desc limit 1",
    );
    expect(act.rows[0].status).toBe("succeeded");
    expect(act.rows[0].details).toMatchObject({ dirty: 10, requested: 10, already_requested: 0 });
    const counts = async () =>
      (
        await db.query(
          "select count(*) filter (where certificate_dirty_since is not null)::int as dirty from gk_public.robots where team_id = $1",
          [team.id],
        )
      ).rows[0].dirty;
    expect(await counts()).toBe(15); // the 10 were issued by certificates__issue and are clean
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"max_robots": 100}}'::json)`);
    await h.runJobs();
    expect(await counts()).toBe(0);
    const subjects = await db.query(
      "select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status = 'issued' and subject->>'organization' = 'swept-renamed'",
      [team.id],
    );
    expect(subjects.rows[0].n).toBe(25);
  });

  it("a robot moved to another team: its certificate is refused at once and dirty; the sweep issues one with the new team's subject", async () => {
    const { robotId, creds } = await robotWithCert("move-from");
    const to = await insertTeam(db, { name: "move-to" });
    const before = await state(robotId);
    await db.query("update gk_public.robots set team_id = $2 where id = $1", [robotId, to.id]);
    expect(await h.request(creds, "GET", "/robot/v1/certificate")).toMatchObject({ status: 403 });
    expect(await state(robotId)).toEqual({ generation: before.generation + 1, dirty: true });
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"max_robots": 1000}}'::json)`);
    await h.runJobs();
    const { rows } = await db.query(
      "select owner_team_id, pem from gk_public.certificates where robot_id = $1 and status = 'issued' and replaces_certificate_id is not null",
      [robotId],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].owner_team_id).toBe(to.id);
    expect(subjectOf(rows[0].pem)).toMatch(new RegExp(`O=move-to,OU=robot,CN=${robotId}$`));
    expect(await state(robotId)).toMatchObject({ dirty: false });
  });

  it("revokes a replaced certificate whose replacement was never downloaded once the grace period is over", async () => {
    const { robotId, creds } = await robotWithCert();
    await db.query("update gk_public.robots set name = name || '-graced' where id = $1", [robotId]);
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"grace_hours": 1}}'::json)`);
    await h.runJobs();
    expect((await h.request(creds, "GET", "/robot/v1/certificate")).status).toBe(200); // still within grace: hands over…
    // …which supersedes it. Another robot that never comes back: its old certificate lapses after grace.
    const away = await robotWithCert();
    await db.query("update gk_public.robots set name = name || '-away' where id = $1", [away.robotId]);
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"grace_hours": 1}}'::json)`);
    await h.runJobs();
    expect((await db.query("select status from gk_public.certificates where id = $1", [away.creds.certificateId])).rows[0].status).toBe(
      "issued",
    );
    await db.query("update gk_public.certificates set issued_at = now() - interval '2 hours' where replaces_certificate_id = $1", [
      away.creds.certificateId,
    ]);
    await db.query(`select graphile_worker.add_job('robots__regenerate', '{"limits": {"grace_hours": 1}}'::json)`);
    await h.runJobs();
    const act = await db.query(
      "select details from gk_public.activations where task = 'robots__regenerate' order by started_at desc limit 1",
    );
    expect(act.rows[0].details.superseded).toBe(1);
    const old = await db.query("select status, revocation_reason from gk_public.certificates where id = $1", [away.creds.certificateId]);
    expect(old.rows[0]).toEqual({ status: "revoked", revocation_reason: "superseded" });
  });

  it("refuses to export the key of a dirty certificate, and replaces a CA-generated key's certificate for the same key", async () => {
    const team = await insertTeam(db);
    const [robot] = await insertRobots(db, { team });
    const { rows } = await db.query("select id from gk_public.request_certificate($1)", [robot!.id]);
    await h.runJobs();
    const pem = (await db.query("select pem from gk_public.certificates where id = $1", [rows[0].id])).rows[0].pem;
    await db.query("update gk_public.robots set name = 'exported-later' where id = $1", [robot!.id]);
    expect(await takeCertificateKey(db.pool, testSecrets, rows[0].id)).toMatchObject({ status: 409, error: /dirty/ });
    // The sweep replaces it with the same key, taken from its certificate.
    await db.query("select graphile_worker.add_job('robots__regenerate', '{}'::json)");
    await h.runJobs();
    const next = await db.query("select pem, public_key_pem from gk_public.certificates where replaces_certificate_id = $1", [rows[0].id]);
    expect(next.rows[0].public_key_pem).toBe(spkiOfPem(pem));
    expect(spkiOfPem(next.rows[0].pem)).toBe(spkiOfPem(pem));
    // The old key is still parked: once the certificate is clean again… it is not (it stays behind); refused.
    expect(await takeCertificateKey(db.pool, testSecrets, rows[0].id)).toMatchObject({ status: 409 });
  });

  it("compromise is immediate: revoke_robot_certificates refuses the robot at once; bad input changes nothing", async () => {
    const { robotId, creds } = await robotWithCert();
    await expect(db.query("select gk_public.revoke_robot_certificates($1, 'bogus')", [robotId])).rejects.toMatchObject({ code: "22023" });
    await expect(db.query("select gk_public.revoke_robot_certificates(gen_random_uuid())")).rejects.toMatchObject({ code: "P0002" });
    expect((await h.request(creds, "GET", "/robot/v1/certificate")).status).toBe(200);
    expect((await db.query("select gk_public.revoke_robot_certificates($1) as n", [robotId])).rows[0].n).toBe("1");
    expect((await h.request(creds, "GET", "/robot/v1/certificate")).status).toBe(403);
    await h.runJobs();
    const { rows } = await db.query("select status, revocation_reason from gk_public.certificates where id = $1", [creds.certificateId]);
    expect(rows[0]).toEqual({ status: "revoked", revocation_reason: "keyCompromise" });
  });
});
