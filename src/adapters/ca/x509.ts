// X.509 building blocks shared by the CA adapters: keys, serials, certificate and CRL signing.
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import crypto from "node:crypto";
import * as x509 from "@peculiar/x509";
import {
  CaRequestError,
  type CertificateProfile,
  type RevocationReason,
  SERVER_PROFILES,
  type SubjectExtra,
  subjectExtraRdns,
} from "./types.ts";

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

export const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
export const EC_SIGN: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await globalThis.crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await globalThis.crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  const der = await globalThis.crypto.subtle.exportKey("spki", key);
  return x509.PemConverter.encode(der, "PUBLIC KEY");
}

export async function importEcPrivateKey(pkcs8Pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pkcs8Pem);
  return globalThis.crypto.subtle.importKey("pkcs8", der, EC_KEY, false, ["sign"]);
}

/** Parses an SPKI PEM (EC or RSA); bad input → CaRequestError. */
export function parsePublicKey(pem: string): x509.PublicKey {
  try {
    const key = new x509.PublicKey(pem);
    if (!key.algorithm) throw new Error("no algorithm");
    return key;
  } catch (e) {
    throw new CaRequestError(`publicKeyPem is not a valid SPKI public key: ${(e as Error).message}`);
  }
}

/** The public key of a CSR whose self-signature verifies; bad input → CaRequestError. */
export async function publicKeyOfCsr(pem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new CaRequestError(`csrPem is not a valid PKCS#10 request: ${(e as Error).message}`);
  }
  if (!(await csr.verify())) throw new CaRequestError("csrPem signature does not verify (no proof of possession)");
  return csr.publicKey;
}

/**
 * A random positive 128-bit serial, already normalised (lower-case hex, no leading zeros).
 * The top bit is cleared so the DER INTEGER needs no padding byte; RFC 5280 allows ≤ 20 octets.
 */
export function randomSerial(): string {
  const b = crypto.randomBytes(16);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 0x01;
  return b.toString("hex").replace(/^0+/, "");
}

/** x509 wants an even number of hex digits. */
export function serialForX509(normalised: string): string {
  return normalised.length % 2 ? `0${normalised}` : normalised;
}

const REASON_CODES: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
};
export function reasonCode(reason: RevocationReason): x509.X509CrlReason {
  return REASON_CODES[reason];
}
/**
 * CRL entry fields for a reason. x509 writes an empty (invalid DER) crlEntryExtensions when an
 * entry has none, and skips reason 0, so "unspecified" is written as an explicit reasonCode.
 */
export function crlEntryReason(reason: RevocationReason): { reason?: x509.X509CrlReason; extensions?: x509.Extension[] } {
  const code = REASON_CODES[reason];
  if (code !== x509.X509CrlReason.unspecified) return { reason: code };
  return { extensions: [new x509.Extension("2.5.29.21", false, new Uint8Array([0x0a, 0x01, 0x00]))] };
}

/** openssl wants the "X509 CRL" PEM label (x509 writes "CRL"). */
export function crlToPem(crl: x509.X509Crl): string {
  return `${x509.PemConverter.encode(crl.rawData, "X509 CRL")}\n`;
}

export const REASONS = Object.keys(REASON_CODES) as RevocationReason[];

/** DER of a non-negative INTEGER (CRL numbers are small; bigint for safety). */
function derInteger(n: bigint): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, "hex");
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return new Uint8Array([0x02, bytes.length, ...bytes]);
}

/** cRLNumber (2.5.29.20): x509 has no class for it, so it is encoded here. */
export function crlNumberExtension(n: bigint): x509.Extension {
  return new x509.Extension("2.5.29.20", false, derInteger(n));
}

export async function createCaCertificate(name: string, keys: CryptoKeyPair, years = 20): Promise<x509.X509Certificate> {
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialForX509(randomSerial()),
    name: `CN=${escapeDn(name)}, O=Groundskeeper`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
}

/**
 * RFC 5280 key identifier (method 1): SHA-1 of the subjectPublicKey bits. Computed with
 * node:crypto because x509's own helper re-exports the key through WebCrypto (~1 ms each).
 */
export function keyIdentifier(publicKey: x509.PublicKey): string {
  const key = crypto.createPublicKey({ key: Buffer.from(publicKey.rawData), format: "der", type: "spki" });
  let bits: Buffer;
  if (key.asymmetricKeyType === "ec") {
    const jwk = key.export({ format: "jwk" });
    bits = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
  } else if (key.asymmetricKeyType === "rsa") {
    bits = key.export({ type: "pkcs1", format: "der" });
  } else {
    const jwk = key.export({ format: "jwk" });
    bits = Buffer.from(jwk.x!, "base64url"); // Ed25519/Ed448: the raw public key
  }
  return crypto.createHash("sha1").update(bits).digest("hex");
}

export async function signLeafCertificate(opts: {
  caCert: x509.X509Certificate;
  /** keyIdentifier(caCert.publicKey), computed once per CA. */
  caKeyId: string;
  caKey: CryptoKey;
  serial: string;
  commonName: string;
  profile: CertificateProfile;
  subject?: SubjectExtra | undefined;
  publicKey: x509.PublicKey;
  notAfter: Date;
}): Promise<x509.X509Certificate> {
  const notBefore = new Date(Date.now() - 5 * 60_000); // tolerate clock skew of the holder
  return x509.X509CertificateGenerator.create({
    serialNumber: serialForX509(opts.serial),
    // Structured names: parsing DN strings costs x509 ~3 ms per certificate.
    subject: [{ CN: [opts.commonName] }, { OU: [opts.profile] }, ...subjectExtraRdns(opts.subject).map(([k, v]) => ({ [k]: [v] }))],
    issuer: opts.caCert.subjectName,
    notBefore,
    notAfter: opts.notAfter,
    publicKey: opts.publicKey,
    signingKey: opts.caKey,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(
        SERVER_PROFILES.includes(opts.profile)
          ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
          : [x509.ExtendedKeyUsage.clientAuth],
      ),
      new x509.AuthorityKeyIdentifierExtension(opts.caKeyId),
      new x509.SubjectKeyIdentifierExtension(keyIdentifier(opts.publicKey)),
    ],
  });
}

/** RFC 4514 escaping of an attribute value. */
export function escapeDn(value: string): string {
  return value
    .replace(/([,+"\\<>;=])/g, "\\$1")
    .replace(/^([ #])/, "\\$1")
    .replace(/ $/, "\\ ");
}

export function validateIssueRequest(req: { commonName: string; notAfter: Date; profile: string }): void {
  if (typeof req.commonName !== "string" || req.commonName.length < 1 || req.commonName.length > 64)
    throw new CaRequestError("commonName must be 1–64 characters");
  if (!(req.notAfter instanceof Date) || Number.isNaN(req.notAfter.getTime())) throw new CaRequestError("notAfter must be a valid Date");
  if (req.notAfter.getTime() <= Date.now()) throw new CaRequestError("notAfter must be in the future");
  if (!["robot", "client_auth", "provisioning", ...SERVER_PROFILES].includes(req.profile))
    throw new CaRequestError(`unknown certificate profile ${JSON.stringify(req.profile)}`);
}
