// CA-generated private keys: parked sealed by the issue task, downloaded once by an admin over
// real HTTP (real admin server, real tokens, real local CA; certificates checked with openssl).
import crypto, { X509Certificate } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { areaServerParts } from "../../src/areas.ts";
import { startAdminServer } from "../../src/server/server.ts";
import { createTestDb } from "../helpers/db.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { openssl } from "../helpers/openssl.ts";
import { localCa } from "./helpers/ca-fixtures.ts";
import { ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";

const db = await createTestDb();
const ca = localCa(db, "keys");
const services = testServices({ ca });
const api = await httpGraphql(db, { services });

async function get(path: string, as: "admin" | "viewer" | null = "admin") {
  const res = await fetch(`${api.url}${path}`, as ? { headers: { Authorization: `Bearer ${api.tokens[as]}` } } : {});
  const type = res.headers.get("content-type") ?? "";
  return { status: res.status, type, body: type.startsWith("application/json") ? await res.json() : await res.text() };
}

async function createCredential(team: string): Promise<string> {
  return (await db.query("select (gk_public.create_provisioning_credential($1, 'factory')).id", [team])).rows[0].id;
}

async function requestCert(robot: string, publicKeyPem: string | null = null): Promise<string> {
  return (await db.query("select (gk_public.request_certificate($1, $2)).id", [robot, publicKeyPem])).rows[0].id;
}

async function parkedKeys(certIds: string[]): Promise<{ certificate_id: string; sealed_key: string }[]> {
  const { rows } = await db.query(
    "select certificate_id::text, sealed_key from gk_private.certificate_private_keys where certificate_id = any($1::uuid[])",
    [certIds],
  );
  return rows;
}

async function credentialCertIds(cred: string): Promise<string[]> {
  return (
    await db.query("select id::text from gk_public.certificates where provisioning_credential_id = $1 order by profile", [cred])
  ).rows.map((r) => r.id);
}

function spki(keyOrCert: crypto.KeyObject): string {
  return keyOrCert.export({ type: "spki", format: "pem" }).toString();
}

function expectKeyMatches(privateKeyPem: string, certPem: string): void {
  expect(privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  expect(spki(crypto.createPublicKey(privateKeyPem))).toBe(spki(new X509Certificate(certPem).publicKey));
}

function verifyAgainstCa(caPem: string, certPem: string) {
  return openssl(["verify", "-CAfile", "{ca.pem}", "{cert.pem}"], { "ca.pem": caPem, "cert.pem": certPem });
}

describe("provisioning credential bundle", () => {
  it("parks both generated keys sealed, hands them out once with their certificates, then 410", async () => {
    const team = (await insertTeam(db, { name: "bundle" })).id;
    const cred = await createCredential(team);
    await runJobs(db, services);
    const certIds = await credentialCertIds(cred);
    const parked = await parkedKeys(certIds);
    // Fails if the issue task stops storing the key the CA generated.
    expect(parked).toHaveLength(2);
    for (const k of parked) {
      expect(k.sealed_key).toMatch(/^v1:/);
      expect(k.sealed_key).not.toContain("PRIVATE KEY");
    }

    expect((await get(`/provisioning-credentials/${cred}/bundle`, null)).status).toBe(401);
    const viewer = await get(`/provisioning-credentials/${cred}/bundle`, "viewer");
    expect(viewer.status).toBe(403);
    expect(await parkedKeys(certIds)).toHaveLength(2); // the refused requests consumed nothing

    const first = await get(`/provisioning-credentials/${cred}/bundle`);
    expect(first.status).toBe(200);
    const bundle = first.body;
    expect(bundle.credential_id).toBe(cred);
    expect(bundle.certificates.map((c: any) => c.profile)).toEqual(["client_auth", "provisioning"]);
    expect(bundle.ca_certificate_pem).toBe(await ca.caCertificatePem());
    for (const c of bundle.certificates) {
      expectKeyMatches(c.private_key_pem, c.certificate_pem);
      const v = verifyAgainstCa(bundle.ca_certificate_pem, c.certificate_pem);
      expect(v.out).toContain("OK");
      expect(v.status).toBe(0);
    }
    // The two certificates carry different keys.
    expect(bundle.certificates[0].private_key_pem).not.toBe(bundle.certificates[1].private_key_pem);

    expect(await parkedKeys(certIds)).toHaveLength(0);
    const { rows } = await db.query(
      "select count(*)::int as n from gk_public.certificates where id = any($1::uuid[]) and downloaded_at is not null",
      [certIds],
    );
    expect(rows[0].n).toBe(2);

    const again = await get(`/provisioning-credentials/${cred}/bundle`);
    expect(again.status).toBe(410);
    expect(again.body.errors[0].message).toMatch(/already downloaded, or never held by Groundskeeper/);
    expect((await get(`/certificates/${certIds[0]}/key.pem`)).status).toBe(410);
  });

  it("409 while the credential is still issuing (nothing consumed); 404 for an unknown or malformed id", async () => {
    const team = (await insertTeam(db, { name: "early" })).id;
    const cred = await createCredential(team);
    const early = await get(`/provisioning-credentials/${cred}/bundle`);
    expect(early.status).toBe(409);
    expect(early.body.errors[0].message).toMatch(/not issued yet/);
    await runJobs(db, services);
    expect(await parkedKeys(await credentialCertIds(cred))).toHaveLength(2);
    expect((await get(`/provisioning-credentials/${crypto.randomUUID()}/bundle`)).status).toBe(404);
    expect((await get(`/provisioning-credentials/not-a-uuid/bundle`)).status).toBe(404);
    expect((await get(`/provisioning-credentials/${cred}/other`)).status).toBe(404);
    expect((await get(`/provisioning-credentials/${cred}/bundle`)).status).toBe(200);
  });

  it("revoking the credential deletes its parked keys: the bundle is 410", async () => {
    const team = (await insertTeam(db, { name: "revoked" })).id;
    const cred = await createCredential(team);
    await runJobs(db, services);
    const certIds = await credentialCertIds(cred);
    expect(await parkedKeys(certIds)).toHaveLength(2);
    await db.query("select gk_public.revoke_provisioning_credential($1)", [cred]);
    // Gone in the revoking transaction itself, before the CA has revoked anything.
    expect(await parkedKeys(certIds)).toHaveLength(0);
    const res = await get(`/provisioning-credentials/${cred}/bundle`);
    expect(res.status).toBe(410);
    expect(res.body.errors[0].message).toMatch(/revoked/);
    for (const id of certIds) expect((await get(`/certificates/${id}/key.pem`)).status).toBe(410);
    await runJobs(db, services);
    expect((await db.query("select distinct status from gk_public.certificates where id = any($1::uuid[])", [certIds])).rows).toEqual([
      { status: "revoked" },
    ]);
  });

  it("asynchronous CA: 409 until the certificates are handed over, then the bundle", async () => {
    const deferred = localCa(db, "keys-deferred", { deferred: true });
    const dServices = testServices({ ca: deferred });
    const server = await startAdminServer({ databaseUrl: db.url, host: "127.0.0.1", port: 0, services: dServices, ...areaServerParts() });
    afterAll(() => server.close());
    const fetchBundle = (cred: string) =>
      fetch(`${server.url}/provisioning-credentials/${cred}/bundle`, { headers: { Authorization: `Bearer ${api.tokens.admin}` } });
    const team = (await insertTeam(db, { name: "deferred" })).id;
    const cred = await createCredential(team);
    await runJobs(db, dServices);
    const certIds = await credentialCertIds(cred);
    expect(await parkedKeys(certIds)).toHaveLength(2);
    const early = await fetchBundle(cred);
    expect(early.status).toBe(409);
    expect(((await early.json()) as any).errors[0].message).toMatch(/has not handed over/);
    for (const id of certIds) await db.query("select gk_public.download_certificate($1)", [id]);
    await runJobs(db, dServices);
    const res = await fetchBundle(cred);
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as any;
    expect(bundle.ca_certificate_pem).toBe(await deferred.caCertificatePem());
    for (const c of bundle.certificates) {
      expectKeyMatches(c.private_key_pem, c.certificate_pem);
      expect(verifyAgainstCa(bundle.ca_certificate_pem, c.certificate_pem).status).toBe(0);
    }
  });
});

describe("a certificate's key (GET /certificates/<id>/key.pem)", () => {
  it("admin downloads the generated key once as PEM; then 410; viewer 403, no token 401, unknown 404", async () => {
    const team = (await insertTeam(db, { name: "single" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const cert = await requestCert(robot);
    await runJobs(db, services);
    const [parked] = await parkedKeys([cert]);
    expect(parked.sealed_key).not.toContain("PRIVATE KEY");
    const certPem = (await db.query("select gk_public.download_certificate($1) as pem", [cert])).rows[0].pem;

    const none = await get(`/certificates/${cert}/key.pem`, null);
    expect(none.status).toBe(401);
    expect((await get(`/certificates/${cert}/key.pem`, "viewer")).status).toBe(403);
    expect(
      (await fetch(`${api.url}/certificates/${cert}/key.pem`, { method: "POST", headers: { Authorization: `Bearer ${api.tokens.admin}` } }))
        .status,
    ).toBe(405);
    expect((await get(`/certificates/${crypto.randomUUID()}/key.pem`)).status).toBe(404);
    expect((await get(`/certificates/nope/key.pem`)).status).toBe(404);
    expect(await parkedKeys([cert])).toHaveLength(1);

    const first = await get(`/certificates/${cert}/key.pem`);
    expect(first.status).toBe(200);
    expect(first.type).toBe("application/x-pem-file");
    expectKeyMatches(first.body, certPem);
    expect(verifyAgainstCa(await ca.caCertificatePem(), certPem).status).toBe(0);

    const second = await get(`/certificates/${cert}/key.pem`);
    expect(second.status).toBe(410);
    expect(second.body.errors[0].message).toMatch(/already downloaded, or never held by Groundskeeper/);
    // Both attempts are in the admin API's audit log, with the token's name.
    const audited = await db.query(
      "select token_name, outcome from gk_public.audit_events where operation = 'GET /certificates/{id}/key.pem' and arguments->>'id' = $1 order by id",
      [cert],
    );
    expect(audited.rows).toEqual([
      { token_name: "test admin", outcome: "succeeded" },
      { token_name: "test admin", outcome: "failed" },
    ]);
  });

  it("two concurrent downloads: exactly one gets the key", async () => {
    const team = (await insertTeam(db, { name: "race" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const cert = await requestCert(robot);
    await runJobs(db, services);
    const results = await Promise.all([1, 2, 3].map(() => get(`/certificates/${cert}/key.pem`)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 410, 410]);
  });

  it("a certificate requested with the holder's public key parks nothing (410)", async () => {
    const team = (await insertTeam(db, { name: "ownkey" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const { publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const cert = await requestCert(robot, spki(publicKey));
    await runJobs(db, services);
    expect((await db.query("select status from gk_public.certificates where id = $1", [cert])).rows[0].status).toBe("issued");
    expect(await parkedKeys([cert])).toHaveLength(0);
    expect((await get(`/certificates/${cert}/key.pem`)).status).toBe(410);
  });

  it("deleting the robot or expiry deletes the parked key", async () => {
    const team = (await insertTeam(db, { name: "gone" })).id;
    const [r1, r2] = ids(await insertRobots(db, { team, count: 2 }));
    const [c1, c2] = [await requestCert(r1), await requestCert(r2)];
    await runJobs(db, services);
    expect(await parkedKeys([c1, c2])).toHaveLength(2);
    await db.query("delete from gk_public.robots where id = $1", [r1]);
    expect((await parkedKeys([c1, c2])).map((k) => k.certificate_id)).toEqual([c2]);
    await db.query("update gk_public.certificates set not_after = now() - interval '1 second' where id = $1", [c2]);
    expect((await db.query("select gk_private.expire_certificates() as n")).rows[0].n).toBe("1");
    expect(await parkedKeys([c1, c2])).toHaveLength(0);
  });

  it("a credential expires with its certificates, either way round: keys 410 at once, the sweep expires both", async () => {
    const team = (await insertTeam(db, { name: "lapse" })).id;
    const [byCred, byCert] = [await createCredential(team), await createCredential(team)];
    await runJobs(db, services);
    const [credCerts, certCerts] = [await credentialCertIds(byCred), await credentialCertIds(byCert)];
    // The credential's expires_at passed (no sweep yet): neither the bundle nor a key is handed out.
    await db.query("update gk_public.provisioning_credentials set expires_at = now() - interval '1 second' where id = $1", [byCred]);
    expect((await get(`/provisioning-credentials/${byCred}/bundle`)).status).toBe(410);
    for (const c of credCerts) expect((await get(`/certificates/${c}/key.pem`)).status).toBe(410);
    // One certificate of the other credential reached its not_after.
    await db.query("update gk_public.certificates set not_after = now() - interval '1 second' where id = $1", [certCerts[0]]);
    expect((await get(`/certificates/${certCerts[1]}/key.pem`)).status).toBe(410);
    expect((await db.query("select gk_private.expire_certificates() as n")).rows[0].n).toBe("1");
    expect((await db.query("select gk_private.expire_provisioning_credentials() as n")).rows[0].n).toBe("1");
    const { rows } = await db.query(
      "select status, count(*)::int as n from gk_public.certificates where owner_team_id = $1 group by status",
      [team],
    );
    expect(rows).toEqual([{ status: "expired", n: 4 }]);
    const creds = await db.query("select status from gk_public.provisioning_credentials where team_id = $1", [team]);
    expect(creds.rows.map((r) => r.status)).toEqual(["expired", "expired"]);
    expect(await parkedKeys([...credCerts, ...certCerts])).toHaveLength(0);
  });

  it("a sealed key is bound to its certificate: moved to another row, it does not open (500, nothing consumed)", async () => {
    const team = (await insertTeam(db, { name: "bound" })).id;
    const [r1, r2] = ids(await insertRobots(db, { team, count: 2 }));
    const [c1, c2] = [await requestCert(r1), await requestCert(r2)];
    await runJobs(db, services);
    await db.query(
      `update gk_private.certificate_private_keys set sealed_key = (select sealed_key from gk_private.certificate_private_keys where certificate_id = $1)
        where certificate_id = $2`,
      [c1, c2],
    );
    expect((await get(`/certificates/${c2}/key.pem`)).status).toBe(500);
    expect(await parkedKeys([c2])).toHaveLength(1);
    expect((await get(`/certificates/${c1}/key.pem`)).status).toBe(200);
  });
});

describe("a worker without a master key", () => {
  it("does not issue a certificate whose key it could not keep: pending with last_error, retried once configured", async () => {
    const team = (await insertTeam(db, { name: "nobox" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const cert = await requestCert(robot);
    const noBox = testServices({ ca });
    delete noBox.secrets;
    await runJobs(db, noBox);
    const row = (await db.query("select status, attempts, last_error from gk_public.certificates where id = $1", [cert])).rows[0];
    expect(row).toMatchObject({ status: "issuing", attempts: 1 });
    expect(row.last_error).toMatch(/no SecretBox \(master key\) is configured/);
    expect(await parkedKeys([cert])).toHaveLength(0);

    // Retry now (the operator's retryBinItem), with the key configured.
    await db.query("update gk_public.certificates set retry_requested_at = now() where id = $1", [cert]);
    await runJobs(db, services);
    expect((await db.query("select status from gk_public.certificates where id = $1", [cert])).rows[0].status).toBe("issued");
    expect(await parkedKeys([cert])).toHaveLength(1);
  });
});
