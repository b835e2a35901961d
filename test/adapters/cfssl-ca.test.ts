// The cfssl adapter against a real `cfssl serve` (golang-cfssl) with a sqlite certificate DB.
// Debian ships cfssl 1.2.0 (2016), which has no /api/v1/cfssl/crl endpoint and cannot look a
// certificate up by serial (certinfo by serial came in 1.3). On that version the adapter must say
// so clearly, and the revocations it made are checked in cfssl's DB and in a CRL made by cfssl's
// own `cfssl gencrl` from that DB; on cfssl ≥ 1.3 the adapter's fetch() and crlPem() are checked.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CfsslCa, hexToDecimal } from "../../src/adapters/ca/cfssl.ts";
import { CaRequestError, CaUnavailableError } from "../../src/adapters/ca/types.ts";
import { type CfsslServer, cfsslVersion, startCfssl } from "../helpers/cfssl.ts";
import { openssl, opensslSerial, verifyWithCrl } from "../helpers/openssl.ts";
import { needs } from "../helpers/requirements.ts";

const installed = needs("cfssl");
const version = installed ? cfsslVersion() : "not installed";
const legacy = /^1\.[0-2]\./.test(version);
const req = (cn: string) => ({ commonName: cn, profile: "robot" as const, notAfter: new Date(Date.now() + 30 * 86400_000) });

describe.runIf(installed)(`cfssl CA adapter (cfssl ${version})`, () => {
  let server: CfsslServer;
  let ca: CfsslCa;
  beforeAll(async () => {
    server = await startCfssl();
    ca = new CfsslCa({ url: server.url, crlCacheMs: 0, timeoutMs: 5_000 });
  });
  afterAll(() => server?.dispose());

  it("serves the CA certificate cfssl signs with", async () => {
    expect((await ca.caCertificatePem()).trim()).toBe(server.caPem.trim());
  });

  it("issues: a key made here, a CSR signed by cfssl, recorded in cfssl's DB", async () => {
    const r = await ca.issue(req("robot-1"));
    expect(r.serial).toMatch(/^[1-9a-f][0-9a-f]*$/);
    expect(r.privateKeyPem).toContain("BEGIN PRIVATE KEY");
    expect(opensslSerial(r.pem!)).toBe(r.serial);
    expect(r.caRef.startsWith(`${r.serial}:`)).toBe(true);
    const v = openssl(["verify", "-CAfile", "{ca.pem}", "{c.pem}"], { "ca.pem": server.caPem, "c.pem": r.pem! });
    expect(v.out).toContain(": OK");
    const certKey = new crypto.X509Certificate(r.pem!).publicKey.export({ type: "spki", format: "der" });
    const ownKey = crypto.createPublicKey(crypto.createPrivateKey(r.privateKeyPem!)).export({ type: "spki", format: "der" });
    expect(Buffer.compare(certKey, ownKey)).toBe(0);
    expect(server.certdbRows().find((row) => row.serial_number === hexToDecimal(r.serial!))?.status).toBe("good");
  });

  it("signs a holder's own CSR; a bare public key is refused (cfssl needs proof of possession)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-csr-"));
    try {
      const gen = spawnSync(
        "openssl",
        [
          "req",
          "-new",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-subj",
          "/CN=robot-2",
          "-keyout",
          path.join(dir, "k.pem"),
          "-out",
          path.join(dir, "csr.pem"),
        ],
        { encoding: "utf8" },
      );
      expect(gen.status).toBe(0);
      const r = await ca.issue({ ...req("robot-2"), csrPem: fs.readFileSync(path.join(dir, "csr.pem"), "utf8") });
      expect(r.privateKeyPem).toBeUndefined();
      const certKey = new crypto.X509Certificate(r.pem!).publicKey.export({ type: "spki", format: "pem" });
      expect(certKey).toBe(crypto.createPublicKey(fs.readFileSync(path.join(dir, "k.pem"))).export({ type: "spki", format: "pem" }));
      const spki = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }) as string;
      await expect(ca.issue({ ...req("robot-3"), publicKeyPem: spki })).rejects.toThrow(/csrPem/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("revokes (twice is fine) and an unknown serial is a clear refusal", async () => {
    const revoked = await ca.issue(req("revoked"));
    const kept = await ca.issue(req("kept"));
    await ca.revoke(revoked.serial!, "keyCompromise");
    await ca.revoke(revoked.serial!, "keyCompromise");
    await ca.revoke(revoked.serial!.toUpperCase(), "superseded");
    const row = server.certdbRows().find((r) => r.serial_number === hexToDecimal(revoked.serial!));
    expect(row?.status).toBe("revoked");
    await expect(ca.revoke("abcdef12345", "unspecified")).rejects.toThrow(CaRequestError);
    // The revocation is real: cfssl's own CRL tool, fed from cfssl's DB, lists it.
    const crl = server.gencrlFromDb();
    expect(verifyWithCrl(server.caPem, crl, revoked.pem!).out).toContain("certificate revoked");
    expect(verifyWithCrl(server.caPem, crl, kept.pem!).status).toBe(0);
  });

  if (legacy) {
    it("cfssl < 1.3: crlPem() and fetch() fail with an error that says what is missing", async () => {
      await expect(ca.crlPem()).rejects.toThrow(/\/api\/v1\/cfssl\/crl needs cfssl ≥ 1\.3/);
      const r = await ca.issue(req("lookup"));
      await expect(ca.fetch(r.caRef)).rejects.toThrow(/certinfo by serial needs cfssl ≥ 1\.3/);
      expect(await ca.fetch("not-a-ref")).toMatchObject({ status: "failed" });
    });
  } else {
    it("cfssl ≥ 1.3: fetch() finds the certificate and crlPem() lists revoked serials", async () => {
      const r = await ca.issue(req("lookup"));
      const f = await ca.fetch(r.caRef);
      expect(f).toMatchObject({ status: "issued", serial: r.serial });
      await ca.revoke(r.serial!, "keyCompromise");
      const crl = await ca.crlPem();
      expect(verifyWithCrl(server.caPem, crl, r.pem!).out).toContain("certificate revoked");
      expect(await ca.fetch(`${"f".repeat(20)}:00`)).toMatchObject({ status: "failed" });
    });
  }

  it("certificate DB failing → CaUnavailableError (retry), not a refusal; repaired → works", async () => {
    const r = await ca.issue(req("db-fault"));
    const dbFile = path.join(server.dir, "certs.db");
    fs.renameSync(dbFile, `${dbFile}.away`);
    fs.mkdirSync(dbFile); // cfssl's sqlite handle now points at a file it cannot write
    try {
      await expect(ca.revoke(r.serial!, "unspecified")).rejects.toThrow(CaUnavailableError);
      await expect(ca.issue(req("db-fault-2"))).rejects.toThrow(CaUnavailableError);
    } finally {
      fs.rmdirSync(dbFile);
      fs.renameSync(`${dbFile}.away`, dbFile);
      await server.stop(); // reopen the DB
      await server.start();
    }
    await ca.revoke(r.serial!, "unspecified");
    expect(server.certdbRows().find((row) => row.serial_number === hexToDecimal(r.serial!))?.status).toBe("revoked");
  });

  it("server down → CaUnavailableError; back up → works again", async () => {
    await server.stop();
    try {
      await expect(ca.issue(req("down"))).rejects.toThrow(CaUnavailableError);
      await expect(ca.revoke("abc", "unspecified")).rejects.toThrow(CaUnavailableError);
      await expect(new CfsslCa({ url: server.url }).caCertificatePem()).rejects.toThrow(CaUnavailableError);
    } finally {
      await server.start();
    }
    const r = await ca.issue(req("back"));
    await ca.revoke(r.serial!, "unspecified");
    expect(server.certdbRows().find((row) => row.serial_number === hexToDecimal(r.serial!))?.status).toBe("revoked");
  });
});
