// Issuance, download and revocation against the real local CA; the CRL is read with openssl.
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { jobs, runJobs, testServices } from "../helpers/jobs.ts";
import { verifyWithCrl } from "../helpers/openssl.ts";
import { crlSerials, localCa, opensslSerial, unreachableCa } from "./helpers/ca-fixtures.ts";
import { certStatuses, ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";

const db = await createTestDb();

async function requestCerts(robotIds: string[]): Promise<string[]> {
  const { rows } = await db.query("select (gk_public.request_certificate(r)).id from unnest($1::uuid[]) r", [robotIds]);
  return rows.map((r) => r.id);
}

async function cert(id: string) {
  return (await db.query("select * from gk_public.certificates where id = $1", [id])).rows[0];
}

// (No blob store in this file: the deleted teams' blob prefixes wait in the bin; see purge tests.)
async function binLength(): Promise<number> {
  return (await db.query("select count(*)::int as n from gk_public.bin where kind = 'certificate'")).rows[0].n;
}

describe("certificates at a real CA", () => {
  it("issues, downloads (recording downloaded_at), and a robot delete revokes it at the CA", async () => {
    const ca = localCa(db, "sync");
    const services = testServices({ ca });
    const team = (await insertTeam(db, { name: "sync" })).id;
    const [r1, r2] = ids(await insertRobots(db, { team, count: 2 }));
    const [c1, c2] = await requestCerts([r1, r2]);
    await runJobs(db, services);
    const issued = await cert(c1);
    expect(issued).toMatchObject({ status: "issued", downloaded_at: null });
    expect(issued.serial).toMatch(/^[0-9a-f]+$/);

    const { rows } = await db.query("select gk_public.download_certificate($1) as pem", [c1]);
    expect(rows[0].pem).toContain("BEGIN CERTIFICATE");
    expect(opensslSerial(rows[0].pem)).toBe(issued.serial);
    expect((await cert(c1)).downloaded_at).not.toBeNull();

    await db.query("delete from gk_public.robots where id = $1", [r1]);
    expect(await certStatuses(db, [c1])).toEqual({ revoking: 1 });
    await runJobs(db, services);
    expect(await certStatuses(db, [c1, c2])).toEqual({ revoked: 1, issued: 1 });
    expect(await crlSerials(ca)).toEqual(new Set([issued.serial]));
    const caPem = await ca.caCertificatePem();
    expect(verifyWithCrl(caPem, await ca.crlPem(), rows[0].pem).out).toContain("certificate revoked");
    const other = (await db.query("select gk_public.download_certificate($1) as pem", [c2])).rows[0].pem;
    expect(verifyWithCrl(caPem, await ca.crlPem(), other).status).toBe(0);
    await expect(db.query("select gk_public.download_certificate($1)", [c1])).rejects.toThrow(/is revoked, it cannot be downloaded/);
  });

  it("serial unknown (asynchronous CA, never downloaded): the revoke task learns it from the CA, then revokes", async () => {
    const ca = localCa(db, "deferred", { deferred: true });
    const services = testServices({ ca });
    const team = (await insertTeam(db, { name: "deferred" })).id;
    const robots = ids(await insertRobots(db, { team, count: 4 }));
    const certs = await requestCerts(robots);
    await runJobs(db, services);
    for (const id of certs) expect(await cert(id)).toMatchObject({ status: "issued", serial: null, pem: null });

    // One is downloaded: the first call asks the CA, a later call returns the PEM and the serial is known.
    expect((await db.query("select gk_public.download_certificate($1) as pem", [certs[0]])).rows[0].pem).toBeNull();
    expect((await jobs(db, "certificates__fetch")).length).toBe(1);
    await runJobs(db, services);
    const pem = (await db.query("select gk_public.download_certificate($1) as pem", [certs[0]])).rows[0].pem;
    expect(pem).toContain("BEGIN CERTIFICATE");
    expect((await cert(certs[0])).serial).toBe(opensslSerial(pem));

    // The team goes while three certificates were never downloaded.
    await db.query("delete from gk_public.teams where id = $1", [team]);
    await runJobs(db, services);
    expect(await certStatuses(db, certs)).toEqual({ revoked: 4 });
    const { rows } = await db.query("select serial, never_issued from gk_public.certificates where id = any($1::uuid[])", [certs]);
    expect(rows.every((r) => r.serial != null && !r.never_issued)).toBe(true);
    expect(await crlSerials(ca)).toEqual(new Set(rows.map((r) => r.serial)));
  });

  it("revoking a provisioning credential revokes both certificates at the CA", async () => {
    const ca = localCa(db, "creds");
    const services = testServices({ ca });
    const team = (await insertTeam(db, { name: "creds" })).id;
    const { rows } = await db.query("select id from gk_public.create_provisioning_credential($1, 'line-1')", [team]);
    await runJobs(db, services);
    expect((await db.query("select status from gk_public.provisioning_credentials where id = $1", [rows[0].id])).rows[0].status).toBe(
      "issued",
    );
    await db.query("select gk_public.revoke_provisioning_credential($1)", [rows[0].id]);
    await runJobs(db, services);
    const { rows: cc } = await db.query("select status, serial from gk_public.certificates where provisioning_credential_id = $1", [
      rows[0].id,
    ]);
    expect(cc.map((c) => c.status)).toEqual(["revoked", "revoked"]);
    expect(await crlSerials(ca)).toEqual(new Set(cc.map((c) => c.serial)));
  });

  it("race: the owner is deleted before issuance took the lock → never issued at the CA, marked so", async () => {
    const ca = localCa(db, "race-before");
    const team = (await insertTeam(db, { name: "race2" })).id;
    const [r] = ids(await insertRobots(db, { team, count: 1 }));
    const [c] = await requestCerts([r]);
    // Another session holds the row (as a running revoke or issue task would) while the delete is queued.
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from gk_public.certificates where id = $1 for update", [c]);
      const del = db.query("delete from gk_public.robots where id = $1", [r]);
      await expect
        .poll(
          async () =>
            (
              await db.query(
                "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
              )
            ).rows[0].n,
        )
        .toBe(1);
      await holder.query("commit");
      await del;
    } finally {
      holder.release();
    }
    expect(await certStatuses(db, [c])).toEqual({ revoking: 1 });
    await runJobs(db, testServices({ ca }));
    expect(await cert(c)).toMatchObject({ status: "revoked", never_issued: true, ca_ref: null, serial: null });
    const { rows } = await db.query("select count(*)::int as n from gk_private.local_ca_certificates where authority = 'race-before'");
    expect(rows[0].n).toBe(0);
  });

  it("an issue job meeting a row that already turned revoking does not lock it: the revoke job running meanwhile claims it", async () => {
    const ca = localCa(db, "race-claim");
    const team = (await insertTeam(db, { name: "race-claim" })).id;
    const [r] = ids(await insertRobots(db, { team, count: 1 }));
    const [c] = await requestCerts([r]);
    await db.query("delete from gk_public.robots where id = $1", [r]);
    await db.query("delete from graphile_worker._private_jobs"); // the revoke job is run by hand below
    // The issue task's claim statement, its transaction held open (in the task it lasts
    // milliseconds; under load a revoke job of the same row can run inside them).
    const issue = await db.pool.connect();
    try {
      await issue.query("begin");
      const { rows } = await issue.query("select outcome from gk_private.certificate_claim_issue($1, gen_random_uuid(), null, true)", [c]);
      expect(rows[0].outcome).toBe("gone");
      await db.query("select gk_private.enqueue('certificates__revoke', jsonb_build_object('ids', array[$1::uuid]))", [c]);
      await runJobs(db, testServices({ ca }));
      expect(await cert(c)).toMatchObject({ status: "revoked", never_issued: true });
    } finally {
      await issue.query("rollback");
      issue.release();
    }
  });

  it("CA unreachable: revocations stay in the bin with attempts and last_error, then drain when it is back", async () => {
    const ca = localCa(db, "outage");
    const team = (await insertTeam(db, { name: "outage" })).id;
    const robots = ids(await insertRobots(db, { team, count: 5 }));
    const certs = await requestCerts(robots);
    await runJobs(db, testServices({ ca }));
    const down = unreachableCa("outage");
    try {
      await db.query("delete from gk_public.teams where id = $1", [team]);
      await runJobs(db, testServices({ ca: down.ca }));
    } finally {
      await down.close();
    }
    const { rows: bin } = await db.query(
      "select attempts, last_error, next_attempt_at > now() as later from gk_public.bin where team_id = $1 and kind = 'certificate'",
      [team],
    );
    expect(bin).toHaveLength(5);
    for (const b of bin) {
      expect(b.attempts).toBe(1);
      expect(b.last_error).toMatch(/CaUnavailableError: local CA database unreachable/);
      expect(b.later).toBe(true);
    }
    const [job] = await jobs(db, "certificates__revoke");
    expect(job.attempts).toBe(1);
    expect(job.last_error).toMatch(/5 of 5 revocations failed/);
    // Back: an operator retries one at once; the reconciler picks the rest up when they are due.
    await db.query("select gk_public.retry_bin_item('certificate', $1)", [certs[0]]);
    await runJobs(db, testServices({ ca }));
    expect(await certStatuses(db, certs)).toEqual({ revoked: 1, revoking: 4 });
    await db.query(
      "update gk_public.certificates set next_attempt_at = now() - interval '1 second' where id = any($1::uuid[]) and status = 'revoking'",
      [certs],
    );
    await db.query("delete from graphile_worker._private_jobs"); // the old job's retry is hours away
    await db.query("select gk_private.enqueue('bin__reconcile')");
    await runJobs(db, testServices({ ca }));
    expect(await certStatuses(db, certs)).toEqual({ revoked: 5 });
    expect(await binLength()).toBe(0);
    const { rows: act } = await db.query(
      "select status, details from gk_public.activations where task = 'bin__reconcile' order by id desc limit 1",
    );
    expect(act[0]).toMatchObject({ status: "succeeded", details: { kinds: { certificate: { revocations: 4, issuances: 0 } } } });
    const serials = (await db.query("select serial from gk_public.certificates where id = any($1::uuid[])", [certs])).rows.map(
      (r) => r.serial,
    );
    expect(await crlSerials(ca)).toEqual(new Set(serials));
  });

  it("bad payloads fail clearly and permanently", async () => {
    await db.query("delete from graphile_worker._private_jobs");
    await db.query(`select gk_private.enqueue('certificates__revoke', '{"ids": ["not-a-uuid"]}')`);
    await db.query(`select gk_private.enqueue('blobs__purge_prefix', '{"id": "x"}')`);
    await runJobs(db, testServices({ ca: localCa(db, "bad") }));
    const failed = await jobs(db);
    expect(failed).toHaveLength(2);
    for (const j of failed) expect(j.attempts).toBe(j.max_attempts);
    expect(failed.map((j) => j.last_error).join("\n")).toMatch(/invalid payload for certificates__revoke: ids.0: Invalid UUID/);
    expect(failed.map((j) => j.last_error).join("\n")).toMatch(/invalid payload for blobs__purge_prefix: id:/);
  });
});
