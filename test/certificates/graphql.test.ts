// The operator surface over HTTP (real admin server, real tokens): request, download, revoke,
// delete robot/team through the generated CRUD, see the bin, retry an item, see activations.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { createTestDb } from "../helpers/db.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { crlSerials, localCa } from "./helpers/ca-fixtures.ts";
import { ids, insertPurgeItems, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";

const db = await createTestDb();
const ca = localCa(db, "graphql");
const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-gql-blobs-"));
afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));
const blobs = new FsBlobStore(blobDir);
const services = testServices({ ca, blobs });
const api = await httpGraphql(db, { services });

describe("certificate lifecycle through GraphQL", () => {
  it("admin requests and downloads a certificate; deleting the robot revokes it at the CA", async () => {
    const team = (await insertTeam(db, { name: "gql" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const req = await api.exec(
      "admin",
      `mutation($r: UUID!) { requestCertificate(input: { robotId: $r }) { result { rowId status profile robotId } } }`,
      { r: robot },
    );
    expect(req.errors).toBeUndefined();
    const cert = req.data.requestCertificate.result;
    expect(cert).toMatchObject({ status: "issuing", profile: "robot", robotId: robot });
    await runJobs(db, services);

    const dl = await api.exec("admin", `mutation($id: UUID!) { downloadCertificate(input: { id: $id }) { result } }`, { id: cert.rowId });
    expect(dl.errors).toBeUndefined();
    expect(dl.data.downloadCertificate.result).toContain("BEGIN CERTIFICATE");
    const seen = await api.exec("viewer", `query($id: UUID!) { certificateByRowId(rowId: $id) { status serial downloadedAt } }`, {
      id: cert.rowId,
    });
    expect(seen.data.certificateByRowId.downloadedAt).not.toBeNull();

    const del = await api.exec("admin", `mutation($id: UUID!) { deleteRobotByRowId(input: { rowId: $id }) { deletedRobotId } }`, {
      id: robot,
    });
    expect(del.errors).toBeUndefined();
    const bin = await api.exec("viewer", `{ allBins { nodes { kind ref teamId attempts lastError age { seconds } } } }`);
    expect(bin.data.allBins.nodes).toEqual([
      expect.objectContaining({ kind: "certificate", ref: cert.rowId, teamId: team, attempts: 0, lastError: null }),
    ]);
    await runJobs(db, services);
    const after = await api.exec("viewer", `query($id: UUID!) { certificateByRowId(rowId: $id) { status serial } }`, { id: cert.rowId });
    expect(after.data.certificateByRowId.status).toBe("revoked");
    expect(await crlSerials(ca)).toContain(after.data.certificateByRowId.serial);
  });

  it("admin creates and revokes a provisioning credential; deletes a team: bin summary, then blobs purged and certificate on the CRL", async () => {
    const team = (await insertTeam(db, { name: "gql-team" })).id;
    const created = await api.exec(
      "admin",
      `mutation($t: UUID!) { createProvisioningCredential(input: { teamId: $t, name: "line" }) { result { rowId status } } }`,
      { t: team },
    );
    expect(created.errors).toBeUndefined();
    const credId = created.data.createProvisioningCredential.result.rowId;
    await runJobs(db, services);
    const revoked = await api.exec(
      "admin",
      `mutation($id: UUID!) { revokeProvisioningCredential(input: { id: $id }) { result { status revokedAt } } }`,
      { id: credId },
    );
    expect(revoked.data.revokeProvisioningCredential.result.status).toBe("revoked");
    await runJobs(db, services);
    const certs = await api.exec(
      "viewer",
      `query($id: UUID!) { allCertificates(condition: { provisioningCredentialId: $id }) { nodes { status } } }`,
      { id: credId },
    );
    expect(certs.errors).toBeUndefined();
    expect(certs.data.allCertificates.nodes).toEqual([{ status: "revoked" }, { status: "revoked" }]);

    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await api.exec("admin", `mutation($r: UUID!) { requestCertificate(input: { robotId: $r }) { result { rowId } } }`, { r: robot });
    await runJobs(db, services);
    for (let i = 0; i < 30; i++) await blobs.put(`teams/${team}/objects/${i}`, "x");
    await blobs.put("teams/other/keep", "x");

    const del = await api.exec("admin", `mutation($id: UUID!) { deleteTeamByRowId(input: { rowId: $id }) { deletedTeamId } }`, {
      id: team,
    });
    expect(del.errors).toBeUndefined();
    const summary = await api.exec("viewer", `{ allBinSummaries(orderBy: KIND_ASC) { nodes { kind length oldestAgeSeconds } } }`);
    expect(summary.errors).toBeUndefined();
    expect(summary.data.allBinSummaries.nodes).toEqual([
      expect.objectContaining({ kind: "blob_prefix", length: 1 }),
      expect.objectContaining({ kind: "certificate", length: 1 }),
    ]);
    await runJobs(db, services);
    const empty = await api.exec("viewer", `{ allBinSummaries { nodes { kind length } } }`);
    expect(empty.data.allBinSummaries.nodes).toEqual([]);
    expect((await blobs.list(`teams/${team}/`, { limit: 10 })).keys).toEqual([]);
    expect((await blobs.list("teams/other/", { limit: 10 })).keys).toEqual(["teams/other/keep"]);
    const { rows } = await db.query(
      "select serial from gk_public.certificates where robot_id is null and owner_team_id = $1 and profile = 'robot'",
      [team],
    );
    expect(await crlSerials(ca)).toContain(rows[0].serial);
  });

  it("viewer cannot mutate; admin retries a bin item; bad input is a clear error", async () => {
    const team = (await insertTeam(db, { name: "gql-roles" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const denied = await api.exec("viewer", `mutation($r: UUID!) { requestCertificate(input: { robotId: $r }) { result { rowId } } }`, {
      r: robot,
    });
    expect(denied.errors?.[0].message).toMatch(/permission denied/);
    const retryDenied = await api.exec("viewer", `mutation { retryBinItem(input: { kind: "blob_prefix", ref: "x" }) { result } }`);
    expect(retryDenied.errors?.[0].message).toMatch(/permission denied/);

    // A pending item to retry: a blob prefix whose purge is waiting (inserted as the team trigger would).
    await insertPurgeItems(db, { refs: ["teams/retry-me/"], nextAttemptAt: "1 hour" });
    const { rows } = await db.query("select ref from gk_public.bin where kind = 'blob_prefix'");
    const retried = await api.exec(
      "admin",
      `mutation($ref: String!) { retryBinItem(input: { kind: "blob_prefix", ref: $ref }) { result } }`,
      { ref: rows[0].ref },
    );
    expect(retried.errors).toBeUndefined();
    expect(retried.data.retryBinItem.result).toBe(true);
    const missing = await api.exec(
      "admin",
      `mutation { retryBinItem(input: { kind: "certificate", ref: "00000000-0000-0000-0000-000000000000" }) { result } }`,
    );
    expect(missing.errors?.[0].message).toMatch(/no pending bin item certificate/);
    const bad = await api.exec(
      "admin",
      `mutation($r: UUID!) { requestCertificate(input: { robotId: $r, publicKeyPem: "garbage" }) { result { rowId } } }`,
      { r: robot },
    );
    expect(bad.errors?.[0].message).toMatch(/public_key_pem must be a PEM/);
    expect((await db.query("select count(*)::int as n from gk_public.certificates where robot_id = $1", [robot])).rows[0].n).toBe(0);
  });

  it("shows the expiry and retention sweeps' activations", async () => {
    await db.query("select gk_private.enqueue('certificates__expire')");
    await db.query("select gk_private.enqueue('retention__sweep')");
    await runJobs(db, services);
    const res = await api.exec("viewer", `{ allActivations(orderBy: ROW_ID_ASC) { nodes { task status counts } } }`);
    expect(res.errors).toBeUndefined();
    const tasks = res.data.allActivations.nodes.map((a: { task: string }) => a.task);
    expect(tasks).toEqual(expect.arrayContaining(["certificates__expire", "retention__sweep"]));
    expect(res.data.allActivations.nodes.find((a: { task: string }) => a.task === "certificates__expire").status).toBe("succeeded");
  });

  it("serves the CRL and CA certificate without a token, and the bin as metrics", async () => {
    const team = (await insertTeam(db, { name: "gql-metrics" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await db.query("select gk_public.request_certificate($1)", [robot]);
    await runJobs(db, services);
    await db.query("delete from gk_public.robots where id = $1", [robot]);
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(/gk_bin_length\{kind="certificate"\} 1/);
    expect(metrics).toMatch(/gk_bin_oldest_age_seconds\{kind="certificate"\} [0-9.e-]+/);
    expect(metrics).toContain('gk_metrics_collector_up{collector="bin"} 1');
    await runJobs(db, services);
    const after = await (await fetch(`${api.url}/metrics`)).text();
    expect(after).toMatch(/gk_bin_length\{kind="certificate"\} 0/);

    const crl = await fetch(`${api.url}/ca/crl.pem`);
    expect(crl.status).toBe(200);
    expect(await crl.text()).toContain("BEGIN X509 CRL");
    const caPem = await fetch(`${api.url}/ca/ca.pem`);
    expect(await caPem.text()).toBe(await ca.caCertificatePem());
    expect((await fetch(`${api.url}/ca/nope`)).status).toBe(404);
  });
});
