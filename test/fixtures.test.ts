// The fixture builders (test/helpers/fixtures/): every state they offer satisfies the tables'
// constraints and looks like what the real code paths leave behind; bulk builders are one
// statement; scenarios make missing parents.
import { describe, expect, it } from "vitest";
import { createTestDb } from "./helpers/db.ts";
import { jobs } from "./helpers/jobs.ts";
import {
  type CertificateState,
  certStatuses,
  imageDigests,
  ids,
  insertCertificates,
  insertEcus,
  insertImages,
  insertProvisioningCredentials,
  insertPurgeItems,
  insertRobotGroup,
  insertRobots,
  insertRollout,
  insertTeam,
  insertTufTargets,
  scenario,
  withCertificates,
  withImages,
  withProvisioningCredentials,
  withPurgeItems,
  withRobots,
  withTeam,
} from "./helpers/fixtures/index.ts";
import { setupRepository } from "./tuf/helpers/tuf.ts";

const db = await createTestDb();

const STATES: CertificateState[] = ["issuing", "issued", "revoking", "revoked", "expired", "failed"];

describe("fixture builders", () => {
  it("certificates in every state carry what that state implies", async () => {
    const s = await scenario(db, withRobots(STATES.length));
    const made = await Promise.all(STATES.map((state, i) => insertCertificates(db, { robots: [s.robots[i]], state })));
    const by = Object.fromEntries(made.map(([c]) => [c.status, c]));
    expect(Object.keys(by).sort()).toEqual([...STATES].sort());
    expect(by.issued).toMatchObject({
      ca_ref: expect.any(String),
      serial: expect.stringMatching(/^[0-9a-f]+$/),
      issued_at: expect.any(Date),
    });
    expect(by.issued.not_after.getTime()).toBeGreaterThan(Date.now());
    expect(by.expired.not_after.getTime()).toBeLessThan(Date.now());
    expect(by.expired.ca_ref).not.toBeNull();
    expect(by.revoked).toMatchObject({ revoked_at: expect.any(Date), revocation_reason: "unspecified", serial: expect.any(String) });
    // The lifecycle trigger opened the pending bookkeeping, as for rows the API writes.
    expect(by.revoking).toMatchObject({ revoke_requested_at: expect.any(Date), next_attempt_at: expect.any(Date) });
    expect(by.issuing).toMatchObject({ ca_ref: null, serial: null, next_attempt_at: expect.any(Date) });
    expect(by.failed.last_error).toEqual(expect.any(String));
  });

  it("owners: credentials get two certificates, a team one, ownerless ones only in states without owner", async () => {
    const team = await insertTeam(db);
    const [cred] = await insertProvisioningCredentials(db, { team, state: "issued" });
    expect(cred.certificates.map((c) => [c.profile, c.status]).sort()).toEqual([
      ["client_auth", "issued"],
      ["provisioning", "issued"],
    ]);
    expect(cred.certificates.every((c) => c.not_after.getTime() === cred.expires_at.getTime())).toBe(true);
    const [teamCert] = await insertCertificates(db, { team });
    expect(teamCert).toMatchObject({ team_id: team.id, owner_team_id: team.id, profile: "client_auth", status: "issued" });
    const gone = await insertCertificates(db, { ownerlessOf: team, state: "revoked", neverIssued: true, count: 2 });
    expect(gone.map((c) => [c.robot_id, c.team_id, c.serial, c.never_issued])).toEqual([
      [null, null, null, true],
      [null, null, null, true],
    ]);
    await expect(insertCertificates(db, { ownerlessOf: team, state: "issued" })).rejects.toThrow(/cannot be issued/);
    await expect(insertCertificates(db, { robots: ["00000000-0000-0000-0000-000000000000"] })).rejects.toThrow(/expected 1 certificates/);
  });

  it("credential states match their certificates; revoked and expired ones carry their timestamps", async () => {
    const team = await insertTeam(db);
    const [revoked] = await insertProvisioningCredentials(db, { team, state: "revoked" });
    const [expired] = await insertProvisioningCredentials(db, { team, state: "expired" });
    expect(revoked.revoked_at).toBeInstanceOf(Date);
    expect(await certStatuses(db, ids(revoked.certificates))).toEqual({ revoked: 2 });
    expect(expired.expired_at).toBeInstanceOf(Date);
    expect(expired.expires_at.getTime()).toBeLessThan(Date.now());
    expect(await certStatuses(db, ids(expired.certificates))).toEqual({ expired: 2 });
  });

  it("pending bookkeeping survives the lifecycle trigger: overdue revocations with attempts", async () => {
    const s = await scenario(db, withRobots(2));
    const due = await insertCertificates(db, {
      robots: s.robots,
      state: "revoking",
      attempts: 2,
      lastError: "CA down",
      nextAttemptAt: "-1 second",
    });
    expect(due.map((c) => c.robot_id)).toEqual(ids(s.robots));
    const { rows } = await db.query(
      "select count(*)::int as n from gk_public.certificates where id = any($1::uuid[]) and next_attempt_at < now() and attempts = 2 and last_error = 'CA down'",
      [ids(due)],
    );
    expect(rows[0].n).toBe(2);
  });

  it("purge items: pending (job enqueued), failing (due later, with error), completed", async () => {
    const team = await insertTeam(db);
    const [pending] = await insertPurgeItems(db, { team });
    expect(pending.ref).toBe(`teams/${team.id}/`);
    const failing = await insertPurgeItems(db, { state: "failing", count: 2 });
    expect(failing.map((f) => f.ref)).toEqual([expect.stringMatching(/\/1\/$/), expect.stringMatching(/\/2\/$/)]);
    expect(failing[0]).toMatchObject({ attempts: 3, last_error: expect.any(String) });
    expect(failing[0].next_attempt_at.getTime()).toBeGreaterThan(Date.now());
    const [done] = await insertPurgeItems(db, { state: "completed" });
    expect(done.completed_at).toBeInstanceOf(Date);
    const { rows } = await db.query("select ref from gk_public.bin where kind = 'blob_prefix' order by ref");
    expect(rows.map((r) => r.ref).sort()).toEqual([pending.ref, ...failing.map((f) => f.ref)].sort());
  });

  it("bulk: 5,000 robots with issued certificates, one statement each", async () => {
    const team = await insertTeam(db);
    const robots = await insertRobots(db, { team, count: 5000 });
    const certs = await insertCertificates(db, { robots, state: "issued" });
    expect(certs).toHaveLength(5000);
    expect(certs.map((c) => c.robot_id)).toEqual(ids(robots));
    expect(new Set(certs.map((c) => c.serial)).size).toBeGreaterThan(4990);
  });

  it("a scenario makes the parents a step needs and collects what every step made", async () => {
    const s = await scenario(db, withRobots(2), withCertificates("issued"), withProvisioningCredentials(1), withPurgeItems());
    expect(s.teams).toHaveLength(1);
    expect(s.robots.every((r) => r.team_id === s.team.id)).toBe(true);
    expect(s.certificates).toHaveLength(4);
    expect(s.credentials).toHaveLength(1);
    await s.run(withTeam({ name: "second" }), withRobots(1), withCertificates({ state: "revoked" }));
    expect(s.team.name).toBe("second");
    expect(s.teamRobots).toHaveLength(1);
    expect(s.certificates.at(-1)).toMatchObject({ robot_id: s.teamRobots[0].id, status: "revoked" });
  });

  it("images: valid digests and blob keys by default, or those of real bytes", async () => {
    const s = await scenario(db, withImages(3, { hardwareIds: ["board-a", "board-b"] }));
    expect(s.images.map((i) => i.version)).toEqual(["1.0.1", "1.0.2", "1.0.3"]);
    expect(s.images.every((i) => i.blob_key.startsWith(`teams/${s.team.id}/images/`))).toBe(true);
    const bytes = Buffer.from("real image bytes");
    const [real] = await insertImages(db, { team: s.team, bytes });
    expect(real).toMatchObject({ ...imageDigests(bytes), length: String(bytes.length) });
  });

  it("TUF targets: valid hashes, many per team in one statement (one publish per team)", async () => {
    const repo = await setupRepository(db, { bins: 4 });
    try {
      await db.query("select graphile_worker.remove_job(key) from graphile_worker.jobs where task_identifier = 'tuf__publish'");
      const made = await insertTufTargets(db, { teams: [repo.teamId], count: 300, prefix: "fw" });
      expect(made).toHaveLength(300);
      expect(made[0]).toEqual({ team_id: repo.teamId, path: "fw/1" });
      const { rows } = await db.query("select count(*)::int as n from gk_public.tuf_targets where team_id = $1 and path like 'fw/%'", [
        repo.teamId,
      ]);
      expect(rows[0].n).toBe(300);
      expect(await jobs(db, "tuf__publish")).toHaveLength(1);
    } finally {
      await repo.close();
    }
  });

  it("rollouts: ECUs per robot (first one primary), groups with members, rollouts prepared, launched or cancelled", async () => {
    const s = await scenario(db, withRobots(2), withImages(1, { hardwareIds: ["hw-a"] }));
    const ecus = await insertEcus(db, { robots: s.robots, perRobot: 2, installedImage: s.images[0] });
    expect(ecus.map((e) => [e.robot_id, e.is_primary, e.installed_image_id])).toEqual([
      [s.robots[0].id, true, s.images[0].id],
      [s.robots[0].id, false, s.images[0].id],
      [s.robots[1].id, true, s.images[0].id],
      [s.robots[1].id, false, s.images[0].id],
    ]);
    const group = await insertRobotGroup(db, { team: s.team, robots: s.robots });
    const images = [{ hardwareId: "hw-a", image: s.images[0] }];
    for (const state of ["prepared", "launched", "cancelled"] as const) {
      const r = await insertRollout(db, { team: s.team, images, group, state });
      expect(r).toMatchObject({ state, target_type: "group", group_id: group.id });
    }
    await expect(insertRobotGroup(db, { team: s.team, robots: [{ id: crypto.randomUUID() }] })).rejects.toThrow();
  });
});
