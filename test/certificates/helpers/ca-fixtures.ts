// Real local CAs for the lifecycle tests (state in the test database, checked with openssl).
import crypto from "node:crypto";
import { LocalCa } from "../../../src/adapters/ca/local.ts";
import { SecretBox } from "../../../src/lib/secrets.ts";
import { createPool } from "../../../src/db/pool.ts";
import type { CertificateAuthority } from "../../../src/adapters/ca/types.ts";
import type { TestDb } from "../../helpers/db.ts";
import { opensslSerial, openssl } from "../../helpers/openssl.ts";

export const testBox = new SecretBox(crypto.randomBytes(32));

export function localCa(db: TestDb, name: string, opts: { deferred?: boolean } = {}): LocalCa {
  return new LocalCa(db.pool, testBox, { name, crlDebounceMs: 0, ...opts });
}

/** The same CA reached through a pool that cannot connect: every call is CaUnavailableError. */
export function unreachableCa(name: string): { ca: LocalCa; close(): Promise<void> } {
  const pool = createPool("postgres://postgres@127.0.0.1:1/nowhere", 2);
  return { ca: new LocalCa(pool, testBox, { name }), close: () => pool.end() };
}

/** Serials on the CA's current CRL, as openssl prints them (normalised lower-case hex). */
export async function crlSerials(ca: CertificateAuthority): Promise<Set<string>> {
  const crl = await ca.crlPem();
  const verify = openssl(["crl", "-noout", "-in", "{crl.pem}", "-CAfile", "{ca.pem}"], {
    "crl.pem": crl,
    "ca.pem": await ca.caCertificatePem(),
  });
  if (!verify.out.includes("verify OK")) throw new Error(`CRL does not verify: ${verify.out}`);
  const text = openssl(["crl", "-noout", "-text", "-in", "{crl.pem}"], { "crl.pem": crl }).out;
  return new Set([...text.matchAll(/Serial Number: ([0-9A-Fa-f]+)/g)].map((m) => m[1].toLowerCase().replace(/^0+/, "") || "0"));
}

export { opensslSerial };

/** The same CA with issue() replaced (everything else, lookup included, passes through). */
export function withIssue(
  ca: CertificateAuthority,
  issue: CertificateAuthority["issue"],
  opts: { lookup?: boolean } = {},
): CertificateAuthority {
  const out: CertificateAuthority = {
    kind: ca.kind,
    issue,
    fetch: (ref) => ca.fetch(ref),
    revoke: (serial, reason) => ca.revoke(serial, reason),
    crlPem: () => ca.crlPem(),
    caCertificatePem: () => ca.caCertificatePem(),
  };
  if (ca.revokeMany) out.revokeMany = (s, r) => ca.revokeMany!(s, r);
  if (ca.lookup && opts.lookup !== false) out.lookup = (k) => ca.lookup!(k);
  return out;
}

/**
 * A CA whose issue() waits at a gate (to hold the issue task inside its CA call); the first
 * `pass` calls go straight through.
 */
export function gatedIssue(ca: CertificateAuthority, opts: { pass?: number } = {}) {
  let entered!: () => void;
  let release!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  const releaseP = new Promise<void>((r) => (release = r));
  let calls = 0;
  const gated = withIssue(ca, async (req) => {
    if (calls++ < (opts.pass ?? 0)) return ca.issue(req);
    entered();
    await releaseP;
    return ca.issue(req);
  });
  return { ca: gated, entered: enteredP, release };
}

/** A CA that signs, then loses its answer (as if our commit failed or the worker died after it). */
export function answerLost(ca: CertificateAuthority, opts: { lookup?: boolean } = {}): CertificateAuthority {
  return withIssue(
    ca,
    async (req) => {
      await ca.issue(req);
      throw new Error("Connection terminated unexpectedly (after the CA signed)");
    },
    opts,
  );
}
