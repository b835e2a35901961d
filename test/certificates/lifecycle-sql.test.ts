// The database side of the certificate lifecycle (no CA involved): who goes to the bin, when,
// and with which jobs. The CA-facing tasks are tested in the other files of this folder.
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { clearJobs as clearQueue, jobs } from "../helpers/jobs.ts";
import {
  certStatuses,
  ids,
  insertCertificates,
  insertRobots,
  insertTeam,
  scenario,
  withCertificates,
  withProvisioningCredentials,
  withRobots,
  withTeam,
} from "../helpers/fixtures/index.ts";

const db = await createTestDb();

async function revokeJobIds(): Promise<string[][]> {
  return (await jobs(db, "certificates__revoke")).map((j) => j.payload.ids);
}

async function clearJobs() {
  await clearQueue(db);
}

describe("certificate lifecycle in SQL", () => {
  it("team delete: every certificate of its robots and credentials goes to revoking, in bulk jobs, and its blob prefix to the bin", async () => {
    await clearJobs();
    // 450 robots with issued certificates, an issued credential (two certificates), a team-owned
    // certificate (owner ref team_id), and another team's robot certificates.
    const doomed = await scenario(
      db,
      withTeam({ name: "doomed" }),
      withRobots(450),
      withCertificates("issued"),
      withProvisioningCredentials(1, { state: "issued" }),
    );
    const team = doomed.team.id;
    const [teamCert] = await insertCertificates(db, { team, state: "issued" });
    const other = await scenario(db, withTeam({ name: "survivor" }), withRobots(3), withCertificates("issued"));
    const otherCerts = ids(other.certificates);
    await clearJobs();

    const deleted = await db.query("delete from gk_public.teams where id = $1", [team]);
    expect(deleted.rowCount).toBe(1);

    const all = [...ids(doomed.certificates), teamCert.id];
    expect(await certStatuses(db, all)).toEqual({ revoking: 453 });
    expect(await certStatuses(db, otherCerts)).toEqual({ issued: 3 });
    const { rows: kept } = await db.query(
      "select count(*)::int as n from gk_public.certificates where id = any($1::uuid[]) and owner_team_id = $2 and revoke_requested_at is not null and next_attempt_at > now()",
      [all, team],
    );
    expect(kept[0].n).toBe(453);

    // One statement → bulk jobs of at most 200 ids, every certificate exactly once.
    const batches = await revokeJobIds();
    expect(batches.length).toBe(3);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(200);
    expect(batches.flat().sort()).toEqual([...all].sort());

    const { rows: purge } = await db.query("select kind, ref, team_id from gk_public.purge_items where team_id = $1", [team]);
    expect(purge).toEqual([{ kind: "blob_prefix", ref: `teams/${team}/`, team_id: team }]);
    expect((await jobs(db, "blobs__purge_prefix")).length).toBe(1);

    const { rows: bin } = await db.query("select kind, length from gk_public.bin_summary order by kind");
    expect(bin).toEqual(
      [
        { kind: "blob_prefix", length: 1 },
        { kind: "certificate", length: 453 },
      ].map((r) => expect.objectContaining(r)),
    );
  });

  it("robot delete (plain SQL): its certificate goes to revoking; one still issuing does too", async () => {
    await clearJobs();
    const team = (await insertTeam(db, { name: "robots" })).id;
    const [r1, r2, r3] = ids(await insertRobots(db, { team, count: 3 }));
    const [c1] = ids(await insertCertificates(db, { robots: [r1], state: "issued" }));
    const { rows } = await db.query("select (gk_public.request_certificate($1)).id", [r2]);
    const c2 = rows[0].id;
    const [c3] = ids(await insertCertificates(db, { robots: [r3], state: "issued" }));
    expect((await jobs(db, "certificates__issue")).map((j) => j.payload.ids)).toEqual([[c2]]);
    await clearJobs();

    await db.query("delete from gk_public.robots where id = any($1::uuid[])", [[r1, r2]]);
    expect(await certStatuses(db, [c1, c2])).toEqual({ revoking: 2 });
    expect(await certStatuses(db, [c3])).toEqual({ issued: 1 });
    expect((await revokeJobIds()).flat().sort()).toEqual([c1, c2].sort());
  });

  it("the CHECK backs the invariant: without the trigger an ownerless live certificate cannot exist", async () => {
    const s = await scenario(db, withTeam({ name: "check" }), withRobots(1), withCertificates("issued"));
    const team = s.team.id;
    const [r] = ids(s.robots);
    const [c] = ids(s.certificates);
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await client.query("alter table gk_public.certificates disable trigger _100_lifecycle");
      await expect(client.query("delete from gk_public.robots where id = $1", [r])).rejects.toThrow(/certificates_live_has_owner/);
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect(await certStatuses(db, [c])).toEqual({ issued: 1 });
    await expect(db.query("update gk_public.certificates set team_id = $1 where id = $2", [team, c])).rejects.toThrow(
      /certificates_(one_owner|live_has_owner)/,
    );
  });

  it("revoking a provisioning credential sends both certificates to revocation (function or plain UPDATE), twice is fine", async () => {
    await clearJobs();
    const team = (await insertTeam(db, { name: "creds" })).id;
    const { rows } = await db.query("select * from gk_public.create_provisioning_credential($1, 'factory', interval '30 days')", [team]);
    const cred = rows[0];
    expect(cred.status).toBe("issuing");
    const { rows: cc } = await db.query(
      "select id, profile from gk_public.certificates where provisioning_credential_id = $1 order by profile",
      [cred.id],
    );
    expect(cc.map((c) => c.profile)).toEqual(["client_auth", "provisioning"]);
    expect((await jobs(db, "certificates__issue")).flatMap((j) => j.payload.ids).sort()).toEqual(cc.map((c) => c.id).sort());
    // Issued at the CA (recorded the way the issue task does): the credential becomes issued.
    for (const c of cc) {
      await db.query("select gk_private.certificate_claim_issue($1, $1, '1 second', true)", [c.id]);
      await db.query("select gk_private.certificate_issued($1, $1, $2, null, null, null, null, null)", [c.id, `ref-${c.id}`]);
    }
    expect((await db.query("select status from gk_public.provisioning_credentials where id = $1", [cred.id])).rows[0].status).toBe(
      "issued",
    );
    await clearJobs();

    const revoked = await db.query("select * from gk_public.revoke_provisioning_credential($1)", [cred.id]);
    expect(revoked.rows[0].status).toBe("revoked");
    expect(
      await certStatuses(
        db,
        cc.map((c) => c.id),
      ),
    ).toEqual({ revoking: 2 });
    expect((await revokeJobIds()).flat().sort()).toEqual(cc.map((c) => c.id).sort());
    await db.query("select gk_public.revoke_provisioning_credential($1)", [cred.id]);
    expect((await revokeJobIds()).length).toBe(1);

    const { rows: r2 } = await db.query("select (gk_public.create_provisioning_credential($1, 'sql')).id", [team]);
    await db.query("update gk_public.provisioning_credentials set status = 'revoked', revoked_at = now() where id = $1", [r2[0].id]);
    const { rows: sqlRevoked } = await db.query("select status from gk_public.certificates where provisioning_credential_id = $1", [
      r2[0].id,
    ]);
    expect(sqlRevoked.map((r) => r.status)).toEqual(["revoking", "revoking"]);

    await expect(db.query("select gk_public.revoke_provisioning_credential(gen_random_uuid())")).rejects.toThrow(
      /provisioning credential .* not found/,
    );
  });

  it("bad input: clear errors and nothing changed", async () => {
    const [r] = ids((await scenario(db, withTeam({ name: "badinput" }), withRobots(1))).robots);
    const before = (await db.query("select count(*)::int as n from gk_public.certificates")).rows[0].n;
    await expect(db.query("select gk_public.request_certificate(gen_random_uuid())")).rejects.toThrow(/robot .* not found/);
    await expect(db.query("select gk_public.request_certificate($1, 'not a key')", [r])).rejects.toThrow(/public_key_pem must be a PEM/);
    await expect(db.query("select gk_public.request_certificate($1, null, interval '20 years')", [r])).rejects.toThrow(
      /valid_for must be between/,
    );
    await expect(db.query("select gk_public.create_provisioning_credential(gen_random_uuid(), 'x')")).rejects.toThrow(/team .* not found/);
    await expect(db.query("select gk_public.retry_bin_item('certificate', 'nope')")).rejects.toThrow(/not a certificate id/);
    await expect(db.query("select gk_public.retry_bin_item('certificate', gen_random_uuid()::text)")).rejects.toThrow(
      /no pending bin item/,
    );
    await expect(db.query("select gk_public.download_certificate(gen_random_uuid())")).rejects.toThrow(/certificate .* not found/);
    expect((await db.query("select count(*)::int as n from gk_public.certificates")).rows[0].n).toBe(before);
  });

  it("roles: the viewer reads the bin but cannot mutate; the admin can", async () => {
    const s = await scenario(db, withTeam({ name: "roles" }), withRobots(1));
    const team = s.team.id;
    const [r] = ids(s.robots);
    const client = await db.pool.connect();
    try {
      await client.query("begin; set local role gk_viewer");
      await client.query("select * from gk_public.bin");
      await client.query("select * from gk_public.bin_summary");
      await client.query("select * from gk_public.activations");
      await expect(client.query("select gk_public.request_certificate($1)", [r])).rejects.toThrow(/permission denied/);
      await client.query("rollback");
      await client.query("begin; set local role gk_admin");
      const { rows } = await client.query("select (gk_public.request_certificate($1)).status", [r]);
      expect(rows[0].status).toBe("issuing");
      await client.query("delete from gk_public.robots where id = $1", [r]);
      const { rows: bin } = await client.query("select kind, attempts from gk_public.bin where team_id = $1", [team]);
      expect(bin).toEqual([{ kind: "certificate", attempts: 0 }]);
      await client.query("select gk_public.retry_bin_item('certificate', ref) from gk_public.bin where team_id = $1", [team]);
      await client.query("rollback");
    } finally {
      client.release();
    }
  });
});
