// A real worker process SIGKILLed after the CA signed and before the answer reached it, then a
// new worker: nothing the CA signed may stay valid without a row that says so.
// - cfssl (Debian's 1.2 cannot be asked what it signed under our id): the worker talks to a real
//   `cfssl serve` through a proxy that forwards the sign request and withholds cfssl's answer; the
//   kill lands while it is withheld. The retry must not sign again: the row turns visibly
//   unresolved (bin, status), and the operator's answer revokes what cfssl signed and issues anew.
// - the local CA (answers lookups): the worker signs for real and then never answers (the kill
//   lands there); the retry adopts the certificate for the holder's own key, and revokes (on the
//   CRL, read with openssl) and replaces the one whose CA-made key died with the worker.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hexToDecimal } from "../../src/adapters/ca/cfssl.ts";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { binSection } from "../../src/bin/status.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { startCfssl } from "../helpers/cfssl.ts";
import { createTestDb } from "../helpers/db.ts";
import { ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { verifyWithCrl } from "../helpers/openssl.ts";
import { needs } from "../helpers/requirements.ts";
import { crlSerials } from "./helpers/ca-fixtures.ts";
import { startHoldingProxy } from "./helpers/holding-proxy.ts";
import { workerProcesses } from "./helpers/spawn-worker.ts";

const db = await createTestDb();
// Claims last the lease plus the CA call's deadline: short ones run out within the test.
await db.query(`alter database ${db.name} set groundskeeper.bin_lease = '1 second'`);
await db.query("set groundskeeper.bin_lease = '1 second'"); // the pool's one session so far
const masterKey = crypto.randomBytes(32);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-issue-kill-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const workers = workerProcesses({ DATABASE_URL: db.url, GK_MASTER_KEY: masterKey.toString("base64"), GK_BLOBS_DIR: dir });
// The killed worker's CA deadline; its successor's outlasts a loaded machine.
const KILLED = { GK_CA_TIMEOUT_MS: "5000" };
const SUCCESSOR = { GK_CA_TIMEOUT_MS: "20000" };

async function certsOf(team: string) {
  return (await db.query("select * from gk_public.certificates where owner_team_id = $1 order by created_at, id", [team])).rows;
}

/** Ticks the bin reconciler (as the crontab would) until `done` holds. */
async function reconcileUntil(done: () => Promise<boolean>, timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > until) {
      const { rows } = await db.query(
        "select id, status, unresolved, attempts, last_error, next_attempt_at, claim_expires_at from gk_public.certificates where status in ('issuing', 'revoking')",
      );
      throw new Error(`not settled: ${JSON.stringify(rows)}`);
    }
    await db.query("select gk_private.enqueue('bin__reconcile', job_key := 'bin__reconcile')");
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe.runIf(needs("cfssl"))("a worker killed while cfssl's answer is held (cfssl: no lookup)", () => {
  it("the retry signs nothing: the row is unresolved in the bin and status; the operator's answer revokes it and issues anew", {
    timeout: 180_000,
  }, async () => {
    const server = await startCfssl();
    const proxy = await startHoldingProxy(server.url);
    try {
      const team = (await insertTeam(db, { name: "cfssl-kill" })).id;
      const [robot] = ids(await insertRobots(db, { team, count: 1 }));
      const { rows: req } = await db.query("select (gk_public.request_certificate($1)).id", [robot]);
      const id: string = req[0].id;

      const first = await workers.start({ GK_CFSSL_URL: proxy.url, ...KILLED });
      await proxy.held; // cfssl signed and stored it; the worker has not heard
      await workers.kill(first);
      const signed = server.certdbRows().filter((r) => new crypto.X509Certificate(r.pem).subject.includes(`serialNumber=${id}`));
      expect(signed).toHaveLength(1);
      expect(server.certdbRows()).toHaveLength(1);
      const serial = BigInt(signed[0]!.serial_number).toString(16);
      const [lost] = await certsOf(team);
      expect(lost).toMatchObject({ status: "issuing", ca_ref: null, unresolved: false });
      expect(lost.issue_attempted_at).not.toBeNull();

      const second = await workers.start({ GK_CFSSL_URL: server.url, ...SUCCESSOR });
      try {
        await reconcileUntil(async () => {
          const [c] = await certsOf(team);
          return c.unresolved || c.status !== "issuing";
        });
        const [row] = await certsOf(team);
        expect(row).toMatchObject({ id, status: "issuing", unresolved: true, ca_ref: null, serial: null });
        expect(server.certdbRows()).toHaveLength(1); // nothing signed twice
        const { rows: bin } = await db.query("select kind, last_error, overdue from gk_public.bin where ref = $1", [id]);
        expect(bin).toEqual([{ kind: "certificate", last_error: expect.stringMatching(/^unresolved: /), overdue: false }]);
        const status = await binSection.collect(db.pool);
        expect(status).toEqual([expect.objectContaining({ kind: "certificate", length: 1, failing: 1 })]);

        // The operator finds what cfssl signed under our id (the subject's serialNumber) and answers.
        await db.query("select gk_public.resolve_certificate($1, $2)", [id, serial]);
        await reconcileUntil(async () => (await certsOf(team)).every((c) => c.status === "issued" || c.status === "revoked"));
      } finally {
        await workers.kill(second);
      }
      const rows = await certsOf(team);
      expect(rows.map((r) => [r.status, r.robot_id != null, r.revocation_reason])).toEqual([
        ["issued", true, null],
        ["revoked", false, "superseded"],
      ]);
      const [issued, superseded] = rows;
      expect(superseded.serial).toBe(serial);
      const at = server.certdbRows();
      expect(at).toHaveLength(2);
      expect(Object.fromEntries(at.map((r) => [r.serial_number, r.status]))).toEqual({
        [hexToDecimal(superseded.serial)]: "revoked",
        [hexToDecimal(issued.serial)]: "good",
      });
      const crl = server.gencrlFromDb();
      expect(verifyWithCrl(server.caPem, crl, signed[0]!.pem).out).toContain("certificate revoked");
      expect(verifyWithCrl(server.caPem, crl, issued.pem).status).toBe(0);
    } finally {
      await proxy.close();
      await server.dispose();
    }
  });
});

describe("a worker killed after the local CA signed (lookup by our id)", () => {
  it("own key: adopted, signed once; CA-made key: the first is revoked and on the CRL, a new one issued", {
    timeout: 180_000,
  }, async () => {
    const caName = "kill-local";
    const ca = new LocalCa(db.pool, new SecretBox(masterKey), { name: caName, crlDebounceMs: 0 });
    await ca.caCertificatePem(); // the CA exists before two workers could race to create it
    const team = (await insertTeam(db, { name: "local-kill" })).id;
    const [own, made] = ids(await insertRobots(db, { team, count: 2 }));
    const { publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "pem" }).toString();
    await db.query("select gk_public.request_certificate($1, $2)", [own, spki]);
    await db.query("select gk_public.request_certificate($1)", [made]);
    const effects = path.join(dir, "local-effects.log");

    const first = await workers.start({ GK_CA_NAME: caName, GK_TEST_HOLD_ISSUE: "1", GK_TEST_EFFECT_LOG: effects, ...KILLED });
    const signedLines = () => (fs.existsSync(effects) ? (fs.readFileSync(effects, "utf8").match(/ signed /g)?.length ?? 0) : 0);
    await expect.poll(signedLines, { timeout: 60_000, interval: 50 }).toBe(2);
    await workers.kill(first);
    const atCa = async (robot: string) =>
      (
        await db.query(
          "select l.serial from gk_private.local_ca_certificates l join gk_public.certificates c on l.request_key = c.id::text where l.authority = $1 and c.robot_id = $2 order by l.serial",
          [caName, robot],
        )
      ).rows.map((r) => r.serial);
    const [firstOwn] = await atCa(own);
    const [firstMade] = await atCa(made);
    expect(firstOwn && firstMade).toBeTruthy();
    expect((await certsOf(team)).map((c) => [c.status, c.ca_ref])).toEqual([
      ["issuing", null],
      ["issuing", null],
    ]);

    const second = await workers.start({ GK_CA_NAME: caName, ...SUCCESSOR });
    try {
      await reconcileUntil(async () => (await certsOf(team)).every((c) => c.status === "issued" || c.status === "revoked"));
    } finally {
      await workers.kill(second);
    }
    const rows = await certsOf(team);
    const ownRows = rows.filter((r) => r.robot_id === own);
    expect(ownRows.map((r) => [r.status, r.serial])).toEqual([["issued", firstOwn]]);
    expect(await atCa(own)).toEqual([firstOwn]); // adopted: nothing signed twice
    const madeRow = rows.find((r) => r.robot_id === made)!;
    expect(madeRow.status).toBe("issued");
    expect(madeRow.serial).not.toBe(firstMade);
    const orphans = rows.filter((r) => r.robot_id == null);
    expect(orphans.map((r) => [r.status, r.serial, r.revocation_reason])).toEqual([["revoked", firstMade, "superseded"]]);
    expect(await crlSerials(ca)).toEqual(new Set([firstMade]));
  });
});
