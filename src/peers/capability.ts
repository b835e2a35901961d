// Capability tokens: short-lived permissions Groundskeeper hands a caller (a robot) to make one
// kind of request to one agent, which checks them without a database. A token is signed with
// the key of Groundskeeper's controller certificate and carries that certificate, so an agent
// verifies it with what it already trusts for controller calls: the CA certificate and the CRL
// (a revoked controller's tokens are refused within one CRL refresh). It names the agent (aud,
// its certificate's CN), the caller's certificate serial (sub: a token copied off a robot is
// useless without that robot's key), the resource (res) and an expiry; it grants nothing else.
//   gkcap1.<base64url(claims JSON)>.<base64url(ECDSA P-256 SHA-256 signature, r||s)>.<base64url(certificate DER)>
import crypto from "node:crypto";
import { normalizeSerial } from "../adapters/ca/types.ts";
import type { RevocationList } from "./crl.ts";
import type { PeerCredentials } from "./tls.ts";

const PREFIX = "gkcap1";
/** The longest life an agent accepts, whatever a token says. */
export const CAPABILITY_MAX_TTL_SECONDS = 3600;
/** Clock skew allowed between Groundskeeper and the agent. */
const SKEW_SECONDS = 60;
/** A token is a header: bounded before it is parsed. */
export const CAPABILITY_MAX_LENGTH = 8192;

export interface CapabilityClaims {
  /** The agent's certificate CN (workers.id). */
  aud: string;
  /** The caller's certificate serial (normalised lower-case hex). */
  sub: string;
  /** What it grants, e.g. "exports/<attachment id>". */
  res: string;
  /** Unix seconds. */
  iat: number;
  exp: number;
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** Signs a capability with the controller's credentials. */
export function signCapability(
  controller: PeerCredentials,
  c: { aud: string; sub: string; res: string; ttlSeconds: number; now?: number },
): { token: string; expiresAt: Date } {
  const iat = Math.floor((c.now ?? Date.now()) / 1000);
  const claims: CapabilityClaims = { aud: c.aud, sub: normalizeSerial(c.sub), res: c.res, iat, exp: iat + c.ttlSeconds };
  const signed = `${PREFIX}.${b64(JSON.stringify(claims))}`;
  const sig = crypto.sign("sha256", Buffer.from(signed), { key: controller.keyPem, dsaEncoding: "ieee-p1363" });
  const der = new crypto.X509Certificate(controller.certPem).raw;
  return { token: `${signed}.${b64(sig)}.${b64(der)}`, expiresAt: new Date(claims.exp * 1000) };
}

function subjectField(x: crypto.X509Certificate, field: string): string | undefined {
  for (const line of x.subject.split("\n")) if (line.startsWith(`${field}=`)) return line.slice(field.length + 1);
  return undefined;
}

/** The CN of a certificate (an agent's own identity, for `audience`). */
export function commonNameOf(certPem: string): string {
  return subjectField(new crypto.X509Certificate(certPem), "CN") ?? "";
}

export type CapabilityVerdict = { ok: true; claims: CapabilityClaims } | { ok: false; reason: string };

/**
 * Checks a token for `audience` (this agent) presented by the certificate `callerSerial`, for
 * `resource`: a controller certificate of our CA, current and not on the CRL, signed it; it is
 * unexpired, no longer-lived than CAPABILITY_MAX_TTL_SECONDS, and names exactly these.
 */
export function verifyCapability(
  token: string,
  ctx: { ca: crypto.X509Certificate; crl: RevocationList; audience: string; callerSerial: string; resource: string; now?: number },
): CapabilityVerdict {
  if (token.length > CAPABILITY_MAX_LENGTH) return { ok: false, reason: "token too long" };
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== PREFIX) return { ok: false, reason: "not a capability token" };
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(Buffer.from(parts[3]!, "base64url"));
  } catch {
    return { ok: false, reason: "no signer certificate" };
  }
  const now = ctx.now ?? Date.now();
  if (!cert.checkIssued(ctx.ca) || !cert.verify(ctx.ca.publicKey)) return { ok: false, reason: "signer is not of our CA" };
  if (subjectField(cert, "OU") !== "controller") return { ok: false, reason: "signer is not a controller" };
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return { ok: false, reason: "signer certificate expired" };
  if (!ctx.crl.loaded || ctx.crl.isRevoked(normalizeSerial(cert.serialNumber))) return { ok: false, reason: "signer certificate revoked" };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  let good = false;
  try {
    good = crypto.verify("sha256", signed, { key: cert.publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(parts[2]!, "base64url"));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: "bad signature" };
  let claims: CapabilityClaims;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as CapabilityClaims;
  } catch {
    return { ok: false, reason: "malformed claims" };
  }
  const secs = now / 1000;
  if (typeof claims.exp !== "number" || typeof claims.iat !== "number") return { ok: false, reason: "malformed claims" };
  if (claims.exp <= secs) return { ok: false, reason: "token expired" };
  if (claims.iat > secs + SKEW_SECONDS || claims.exp - claims.iat > CAPABILITY_MAX_TTL_SECONDS)
    return { ok: false, reason: "token lifetime out of bounds" };
  if (claims.aud !== ctx.audience) return { ok: false, reason: "token is for another node" };
  if (claims.sub !== normalizeSerial(ctx.callerSerial)) return { ok: false, reason: "token is for another certificate" };
  if (claims.res !== ctx.resource) return { ok: false, reason: "token is for another resource" };
  return { ok: true, claims };
}
