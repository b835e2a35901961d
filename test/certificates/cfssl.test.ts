// The lifecycle against a real `cfssl serve` (the production-shaped external CA): issue through
// the task, stop cfssl (an outage) while a team is deleted, start it again, and the revocations
// drain. Revocations are checked in cfssl's certificate DB and in a CRL cfssl itself makes
// (`cfssl gencrl`; Debian's cfssl 1.2 has no CRL endpoint), verified with openssl.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import crypto from "node:crypto";
import { CfsslCa, hexToDecimal } from "../../src/adapters/ca/cfssl.ts";
import { EC_KEY, EC_SIGN, generateKeyPair, publicKeyToPem, x509 } from "../../src/adapters/ca/x509.ts";
import { type CfsslServer, cfsslVersion, startCfssl } from "../helpers/cfssl.ts";
import { createTestDb } from "../helpers/db.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { openssl, verifyWithCrl } from "../helpers/openssl.ts";
import { ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { needs } from "../helpers/requirements.ts";

const db = await createTestDb();
const installed = needs("cfssl");

describe.runIf(installed)(`certificate lifecycle at cfssl ${installed ? cfsslVersion() : "(not installed)"}`, () => {
  let server: CfsslServer;
  let ca: CfsslCa;
  let services: ReturnType<typeof testServices>;
  beforeAll(async () => {
    server = await startCfssl();
    ca = new CfsslCa({ url: server.url, crlCacheMs: 0, timeoutMs: 3_000 });
    services = testServices({ ca });
  });
  afterAll(() => server?.dispose());

  it("cfssl down: revocations wait in the bin with last_error; cfssl back: they drain and cfssl's CRL lists them", async () => {
    const team = (await insertTeam(db, { name: "cfssl" })).id;
    const keep = (await insertTeam(db, { name: "cfssl-keep" })).id;
    const robots = ids(await insertRobots(db, { team, count: 6 }));
    const [kept] = ids(await insertRobots(db, { team: keep, count: 1 }));
    await db.query("select gk_public.request_certificate(r) from unnest($1::uuid[]) r", [[...robots, kept]]);
    await runJobs(db, services);
    const { rows: certs } = await db.query(
      "select id, serial, pem, owner_team_id from gk_public.certificates order by owner_team_id = $1",
      [team],
    );
    // Our certificate id travels in the subject (serialNumber), so cfssl's DB can be searched for it.
    const subject = openssl(["x509", "-noout", "-subject", "-in", "{c.pem}"], { "c.pem": certs[0].pem }).out;
    expect(subject).toContain(`serialNumber = ${certs[0].id}`);
    expect(certs.every((c) => c.serial && c.pem)).toBe(true);

    await server.stop();
    await db.query("delete from gk_public.teams where id = $1", [team]);
    await runJobs(db, services);
    const { rows: bin } = await db.query("select attempts, last_error from gk_public.bin where kind = 'certificate'");
    expect(bin).toHaveLength(6);
    for (const b of bin) {
      expect(b.attempts).toBe(1);
      expect(b.last_error).toMatch(/^CaNotSentError: cfssl at .* unreachable: ECONNREFUSED/);
    }

    await server.start();
    await db.query("update gk_public.certificates set next_attempt_at = now() - interval '1 second' where status = 'revoking'");
    await db.query(
      "delete from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'certificates__revoke')",
    );
    await db.query("select gk_private.enqueue('bin__reconcile')");
    await runJobs(db, services);
    expect((await db.query("select count(*)::int as n from gk_public.bin where kind = 'certificate'")).rows[0].n).toBe(0);

    const revokedInCfssl = new Set(
      server
        .certdbRows()
        .filter((r) => r.status === "revoked")
        .map((r) => r.serial_number),
    );
    const doomed = certs.filter((c) => c.owner_team_id === team);
    expect(revokedInCfssl).toEqual(new Set(doomed.map((c) => hexToDecimal(c.serial))));
    const crl = server.gencrlFromDb();
    for (const c of doomed) expect(verifyWithCrl(server.caPem, crl, c.pem).out).toContain("certificate revoked");
    const survivor = certs.find((c) => c.owner_team_id === keep)!;
    expect(verifyWithCrl(server.caPem, crl, survivor.pem).status).toBe(0);
  });

  it("cfssl down while issuing (connection refused): nothing was sent, so the retry signs normally, not unresolved", async () => {
    const team = (await insertTeam(db, { name: "cfssl-refused" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await server.stop();
    const { rows: req } = await db.query("select (gk_public.request_certificate($1)).id", [robot]);
    const id = req[0].id;
    try {
      await runJobs(db, services);
    } finally {
      await server.start();
    }
    const { rows: failed } = await db.query(
      "select status, attempts, last_error, issue_attempted_at, claim_id from gk_public.certificates where id = $1",
      [id],
    );
    expect(failed[0]).toMatchObject({ status: "issuing", attempts: 1, issue_attempted_at: null, claim_id: null });
    expect(failed[0].last_error).toMatch(/^CaNotSentError: .*ECONNREFUSED/);
    await db.query("update gk_public.certificates set next_attempt_at = now() - interval '1 second' where id = $1", [id]);
    await db.query(
      "delete from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'certificates__issue')",
    );
    await db.query("select gk_private.enqueue('bin__reconcile')");
    await runJobs(db, services);
    const { rows } = await db.query("select status, unresolved, serial from gk_public.certificates where id = $1", [id]);
    expect(rows[0]).toMatchObject({ status: "issued", unresolved: false });
    const signed = server.certdbRows().filter((r) => new crypto.X509Certificate(r.pem).subject.includes(`serialNumber=${id}`));
    expect(signed.map((r) => r.serial_number)).toEqual([hexToDecimal(rows[0].serial)]);
  });

  it("a robot's own key via a CSR: cfssl certifies exactly that key", async () => {
    const team = (await insertTeam(db, { name: "cfssl-csr" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${robot}`,
      keys,
      signingAlgorithm: { ...EC_SIGN, ...EC_KEY },
    });
    const { rows } = await db.query("select (gk_public.request_certificate($1, csr_pem := $2)).id", [robot, csr.toString("pem")]);
    await runJobs(db, services);
    const { rows: c } = await db.query("select status, pem from gk_public.certificates where id = $1", [rows[0].id]);
    expect(c[0].status).toBe("issued");
    const certKey = new crypto.X509Certificate(c[0].pem).publicKey.export({ type: "spki", format: "pem" });
    expect(String(certKey).trim()).toBe((await publicKeyToPem(keys.publicKey)).trim());
    await expect(db.query("select gk_public.request_certificate($1, csr_pem := 'nope')", [robot])).rejects.toThrow(/csr_pem must be a PEM/);
  });

  it("records the signed certificate's real validity when cfssl's profile overrides the request", async () => {
    const team = (await insertTeam(db, { name: "cfssl-expiry" })).id;
    const { rows: cred } = await db.query("select id from gk_public.create_provisioning_credential($1, 'f', interval '30 days')", [team]);
    await runJobs(db, services);
    const { rows } = await db.query(
      "select pem, serial, not_before, not_after from gk_public.certificates where provisioning_credential_id = $1",
      [cred[0].id],
    );
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      const signed = new crypto.X509Certificate(r.pem);
      // The test profile signs for 8760 h whatever was asked: the row says what the certificate says.
      expect(r.not_after.getTime()).toBe(new Date(signed.validTo).getTime());
      expect(r.not_before.getTime()).toBe(new Date(signed.validFrom).getTime());
      expect(r.serial).toBe(signed.serialNumber.toLowerCase().replace(/^0+/, ""));
      expect(r.not_after.getTime() - Date.now()).toBeGreaterThan(300 * 86400_000);
    }
    const { rows: p } = await db.query("select expires_at from gk_public.provisioning_credentials where id = $1", [cred[0].id]);
    expect(p[0].expires_at.getTime()).toBe(Math.min(...rows.map((r) => r.not_after.getTime())));
  });

  it("cfssl 1.2 has no CRL endpoint: the refresh activation says so and succeeds, run after run", async () => {
    for (let i = 0; i < 2; i++) {
      await db.query("select gk_private.enqueue('certificates__refresh_crl')");
      await runJobs(db, services);
    }
    const { rows } = await db.query(
      "select status, details->>'crl' as crl, details->>'unsupported_reason' as reason from gk_public.activations where task = 'certificates__refresh_crl' order by id",
    );
    const expected = server.version.startsWith("1.2") ? "unsupported" : "regenerated";
    expect(rows.map((r) => [r.status, r.crl])).toEqual([
      ["succeeded", expected],
      ["succeeded", expected],
    ]);
    if (expected === "unsupported") expect(rows[0].reason).toMatch(/no CRL endpoint .*needs cfssl ≥ 1.3/);
  });
});
