// The local CA against a real PostgreSQL, checked with the real openssl CLI.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { freePort } from "../../src/db/embedded.ts";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { CaRequestError, CaUnavailableError, normalizeSerial } from "../../src/adapters/ca/types.ts";
import { x509 } from "../../src/adapters/ca/x509.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { createTestDb } from "../helpers/db.ts";
import { openssl, opensslSerial, verifyWithCrl } from "../helpers/openssl.ts";

const db = await createTestDb();
const box = new SecretBox(crypto.randomBytes(32));
const inAYear = () => new Date(Date.now() + 365 * 86400_000);
const req = (cn = "robot-1") => ({ commonName: cn, profile: "robot" as const, notAfter: inAYear() });

describe("local CA: issuance", () => {
  const ca = new LocalCa(db.pool, box, { name: "issue" });

  it("issues a certificate openssl verifies, with a generated key that matches it", async () => {
    const r = await ca.issue(req());
    expect(r.serial).toMatch(/^[1-9a-f][0-9a-f]*$/);
    expect(r.privateKeyPem).toContain("BEGIN PRIVATE KEY");
    const fetched = await ca.fetch(r.caRef);
    if (fetched.status !== "issued") throw new Error(`expected issued, got ${fetched.status}`);
    expect(fetched.serial).toBe(r.serial);
    expect(fetched.pem).toBe(r.pem);
    expect(opensslSerial(fetched.pem)).toBe(r.serial);
    const v = openssl(["verify", "-CAfile", "{ca.pem}", "{cert.pem}"], { "ca.pem": await ca.caCertificatePem(), "cert.pem": fetched.pem });
    expect(v.out).toContain(": OK");
    // The generated private key belongs to the certificate.
    const certKey = new crypto.X509Certificate(fetched.pem).publicKey.export({ type: "spki", format: "der" });
    const ownKey = crypto.createPublicKey(crypto.createPrivateKey(r.privateKeyPem!)).export({ type: "spki", format: "der" });
    expect(Buffer.compare(certKey, ownKey)).toBe(0);
    const text = openssl(["x509", "-noout", "-text", "-in", "{c.pem}"], { "c.pem": fetched.pem }).out;
    expect(text).toContain("CN = robot-1");
    expect(text).toContain("TLS Web Client Authentication");
    expect(text).toMatch(/CA:FALSE/);
    // Key identifiers as RFC 5280 method 1 (what x509's own helper computes).
    const cert = new x509.X509Certificate(fetched.pem);
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(ski).toBe((await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId);
    const caSki = new x509.X509Certificate(await ca.caCertificatePem()).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(caSki);
  });

  it("certifies a holder's own public key (and returns no private key)", async () => {
    const { publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "pem" }) as string;
    const r = await ca.issue({ ...req("robot-2"), publicKeyPem: spki });
    expect(r.privateKeyPem).toBeUndefined();
    const certKey = new crypto.X509Certificate(r.pem!).publicKey.export({ type: "spki", format: "pem" });
    expect(certKey).toBe(spki);
  });

  it("signs a CSR after checking its self-signature", async () => {
    const csr = openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=csr",
      "-keyout",
      "/dev/null",
    ]).out;
    const csrPem = /-----BEGIN CERTIFICATE REQUEST-----[\s\S]+?-----END CERTIFICATE REQUEST-----\n/.exec(csr)![0];
    const r = await ca.issue({ ...req("csr"), csrPem });
    const certKey = new crypto.X509Certificate(r.pem!).publicKey.export({ type: "spki", format: "der" });
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    expect(der.includes(certKey.subarray(-65))).toBe(true); // the CSR's EC point is the certificate's
    // Flip a byte of the signature: no proof of possession → refused.
    der[der.length - 3] = der[der.length - 3]! ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(ca.issue({ ...req("csr"), csrPem: tampered })).rejects.toThrow(CaRequestError);
  });

  it("rejects bad input with a clear error and stores nothing", async () => {
    const before = await countCerts("issue");
    await expect(ca.issue({ ...req(), notAfter: new Date(Date.now() - 1000) })).rejects.toThrow(CaRequestError);
    await expect(ca.issue({ ...req(), publicKeyPem: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----" })).rejects.toThrow(
      /publicKeyPem/,
    );
    await expect(ca.issue({ ...req(""), profile: "robot" })).rejects.toThrow(/commonName/);
    await expect(ca.issue({ ...req(), profile: "nope" as never })).rejects.toThrow(/profile/);
    expect(await countCerts("issue")).toBe(before);
  });

  it("answers failed for unknown handles", async () => {
    expect(await ca.fetch(crypto.randomUUID())).toMatchObject({ status: "failed" });
    expect(await ca.fetch("not-a-uuid")).toMatchObject({ status: "failed" });
  });

  it("keeps the CA key sealed at rest; a different master key cannot open it", async () => {
    await ca.caCertificatePem();
    const { rows } = await db.query("select private_key_sealed from gk_private.local_ca_authorities where name = 'issue'");
    expect(rows[0].private_key_sealed).not.toContain("PRIVATE KEY");
    expect(() => new SecretBox(crypto.randomBytes(32)).open(rows[0].private_key_sealed, "local-ca:issue")).toThrow();
    expect(box.open(rows[0].private_key_sealed, "local-ca:issue").toString()).toContain("BEGIN PRIVATE KEY");
  });

  it("creates exactly one CA when several processes initialise it at once", async () => {
    const pools = [createPool(db.url, 2), createPool(db.url, 2), createPool(db.url, 2)];
    try {
      const pems = await Promise.all(pools.map((p) => new LocalCa(p, box, { name: "race" }).caCertificatePem()));
      expect(new Set(pems).size).toBe(1);
      const { rows } = await db.query("select count(*)::int as n from gk_private.local_ca_authorities where name = 'race'");
      expect(rows[0].n).toBe(1);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});

describe("local CA: revocation and CRL", () => {
  it("revokes idempotently; openssl -crl_check rejects the revoked certificate only", async () => {
    const ca = new LocalCa(db.pool, box, { name: "crl", crlDebounceMs: 0 });
    const revoked = await ca.issue(req("revoked"));
    const kept = await ca.issue(req("kept"));
    await ca.revoke(revoked.serial!, "keyCompromise");
    await ca.revoke(revoked.serial!, "superseded"); // twice is fine; the first reason stays
    await ca.revoke(revoked.serial!.toUpperCase(), "keyCompromise"); // normalised
    const crl = await ca.crlPem();
    const caPem = await ca.caCertificatePem();
    const text = openssl(["crl", "-noout", "-text", "-in", "{crl.pem}"], { "crl.pem": crl }).out;
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*\d+/);
    expect(text).toContain("Next Update:");
    expect(text).toContain("Key Compromise");
    expect(text.toLowerCase().replace(/:/g, "")).toContain(revoked.serial!.length % 2 ? `0${revoked.serial}` : revoked.serial!);
    expect(openssl(["crl", "-noout", "-in", "{crl.pem}", "-CAfile", "{ca.pem}"], { "crl.pem": crl, "ca.pem": caPem }).out).toContain(
      "verify OK",
    );
    expect(verifyWithCrl(caPem, crl, revoked.pem!).out).toContain("certificate revoked");
    const ok = verifyWithCrl(caPem, crl, kept.pem!);
    expect(ok.out).toContain(": OK");
    expect(ok.status).toBe(0);
  });

  it("refuses a batch with an unknown serial and changes nothing", async () => {
    const ca = new LocalCa(db.pool, box, { name: "batch" });
    const a = await ca.issue(req("a"));
    const b = await ca.issue(req("b"));
    await expect(ca.revokeMany([a.serial!, "abcdef0123"], "unspecified")).rejects.toThrow(/unknown serial.*abcdef0123/);
    await expect(ca.revoke("zz-not-hex", "unspecified")).rejects.toThrow(CaRequestError);
    await expect(ca.revoke(a.serial!, "bogus" as never)).rejects.toThrow(/reason/);
    expect(await statusOf(a.caRef)).toBe("issued");
    await ca.revokeMany([a.serial!, b.serial!], "cessationOfOperation");
    expect(await statusOf(a.caRef)).toBe("revoked");
    expect(await statusOf(b.caRef)).toBe("revoked");
  });

  it("regenerates a stale CRL at most once per debounce interval, not once per revocation", async () => {
    const ca = new LocalCa(db.pool, box, { name: "debounce", crlDebounceMs: 3600_000 });
    const certs = await Promise.all(Array.from({ length: 20 }, (_, i) => ca.issue(req(`d${i}`))));
    const first = await ca.crlPem();
    const n0 = await crlNumber("debounce");
    for (const c of certs) {
      await ca.revoke(c.serial!, "unspecified");
      expect(await ca.crlPem()).toBe(first); // stale, but regenerated within the interval already
    }
    expect(await crlNumber("debounce")).toBe(n0);
    await ca.refreshCrl(); // the periodic task: stale → regenerate now, once
    const after = await ca.crlPem();
    expect(await crlNumber("debounce")).toBe(n0 + 1);
    const caPem = await ca.caCertificatePem();
    for (const c of certs.slice(0, 3)) expect(verifyWithCrl(caPem, after, c.pem!).out).toContain("certificate revoked");
    await ca.refreshCrl(); // fresh and not stale: nothing to do
    expect(await crlNumber("debounce")).toBe(n0 + 1);
  });

  it("regenerates a stale CRL on read once the debounce interval has passed", async () => {
    const ca = new LocalCa(db.pool, box, { name: "debounce0", crlDebounceMs: 0 });
    const c = await ca.issue(req());
    const before = await ca.crlPem();
    await ca.revoke(c.serial!, "unspecified");
    const after = await ca.crlPem();
    expect(after).not.toBe(before);
    expect(verifyWithCrl(await ca.caCertificatePem(), after, c.pem!).out).toContain("certificate revoked");
  });
});

describe("local CA: deferred issuance", () => {
  it("returns no serial at issue; the certificate is signed on first fetch, once", async () => {
    const ca = new LocalCa(db.pool, box, { name: "deferred", deferred: true });
    const r = await ca.issue(req("late"));
    expect(r.serial).toBeNull();
    expect(r.pem).toBeUndefined();
    expect(r.privateKeyPem).toContain("PRIVATE KEY");
    const many = await Promise.all(Array.from({ length: 5 }, () => ca.fetch(r.caRef)));
    const serials = new Set(many.map((f) => (f.status === "issued" ? f.serial : f.status)));
    expect(serials.size).toBe(1);
    const f = many[0]!;
    if (f.status !== "issued") throw new Error("expected issued");
    expect(opensslSerial(f.pem)).toBe(f.serial);
    expect(normalizeSerial(f.serial)).toBe(f.serial);
    // and it revokes like any other once the serial is known
    await ca.revoke(f.serial, "cessationOfOperation");
    await ca.refreshCrl();
    expect(verifyWithCrl(await ca.caCertificatePem(), await ca.crlPem(), f.pem).out).toContain("certificate revoked");
  });

  it("answers pending until the configured delay has passed, and failed when the CA declines", async () => {
    const ca = new LocalCa(db.pool, box, { name: "slow", deferred: true, deferredDelayMs: 3600_000 });
    const r = await ca.issue(req());
    expect(await ca.fetch(r.caRef)).toEqual({ status: "pending" });
    await expect(ca.revoke("1234", "unspecified")).rejects.toThrow(/unknown serial/);
    await db.query("update gk_private.local_ca_certificates set issue_after = now() where id = $1", [r.caRef]);
    expect(await ca.fetch(r.caRef)).toMatchObject({ status: "issued" });
    const declined = await ca.issue(req());
    expect(await ca.rejectPending(declined.caRef, "policy says no")).toBe(true);
    expect(await ca.fetch(declined.caRef)).toEqual({ status: "failed", reason: "policy says no" });
  });
});

describe("local CA: database unreachable", () => {
  it("throws CaUnavailableError", async () => {
    const pool = createPool(`postgres://postgres@127.0.0.1:${await freePort()}/nothing`, 1);
    try {
      const ca = new LocalCa(pool, box);
      await expect(ca.issue(req())).rejects.toThrow(CaUnavailableError);
      await expect(ca.revoke("abc", "unspecified")).rejects.toThrow(CaUnavailableError);
      await expect(ca.crlPem()).rejects.toThrow(CaUnavailableError);
    } finally {
      await pool.end();
    }
  });
});

async function countCerts(authority: string): Promise<number> {
  const { rows } = await db.query("select count(*)::int as n from gk_private.local_ca_certificates where authority = $1", [authority]);
  return rows[0].n;
}
async function statusOf(caRef: string): Promise<string> {
  const { rows } = await db.query("select status from gk_private.local_ca_certificates where id = $1", [caRef]);
  return rows[0].status;
}
async function crlNumber(authority: string): Promise<number> {
  const { rows } = await db.query("select crl_number::int as n from gk_private.local_ca_authorities where name = $1", [authority]);
  return rows[0].n;
}

describe("local CA: retention", () => {
  it("is registered and prunes only certificates that expired before the cutoff", async () => {
    const { rows: policy } = await db.query("select retention from gk_public.retention_policies where kind = 'local_ca_certificates'");
    expect(policy).toHaveLength(1);
    const ca = new LocalCa(db.pool, box, { name: "retention", deferred: true });
    const pending = await ca.issue(req("pending"));
    const live = await ca.issue(req("live"));
    const old = await ca.issue(req("old"));
    await ca.fetch(live.caRef);
    await ca.fetch(old.caRef);
    await db.query("update gk_private.local_ca_certificates set not_after = now() - interval '200 days' where id = any($1)", [
      [old.caRef, pending.caRef],
    ]);
    const { rows } = await db.query("select gk_private.retention_prune__local_ca_certificates(now() - interval '90 days', 10000) as n");
    expect(Number(rows[0].n)).toBe(1);
    expect(await ca.fetch(old.caRef)).toMatchObject({ status: "failed" });
    expect(await ca.fetch(live.caRef)).toMatchObject({ status: "issued" });
    const { rows: p } = await db.query("select status from gk_private.local_ca_certificates where id = $1", [pending.caRef]);
    expect(p[0].status).toBe("pending");
  });
});
