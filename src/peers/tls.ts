// Mutual TLS between Groundskeeper and its peers (agents on build workers; later export nodes).
// Every certificate comes from Groundskeeper's own CA through the certificate lifecycle; a peer
// is known by its certificate's subject (CN = the owner's id, OU = the profile) and serial.
import fs from "node:fs";
import path from "node:path";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { normalizeSerial } from "../adapters/ca/types.ts";

export interface PeerCredentials {
  keyPem: string;
  certPem: string;
  /** The CA certificate both sides trust (and nothing else). */
  caPem: string;
}

export const CREDENTIAL_FILES = { key: "key.pem", cert: "cert.pem", ca: "ca.pem" } as const;

export function loadCredentialsDir(dir: string): PeerCredentials {
  const read = (f: string) => {
    const p = path.join(dir, f);
    if (!fs.existsSync(p)) throw new Error(`${p} is missing: enrol first (groundskeeper workers enroll --out ${dir})`);
    return fs.readFileSync(p, "utf8");
  };
  return { keyPem: read(CREDENTIAL_FILES.key), certPem: read(CREDENTIAL_FILES.cert), caPem: read(CREDENTIAL_FILES.ca) };
}

export function writeCredentialsDir(dir: string, c: PeerCredentials): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, CREDENTIAL_FILES.key), c.keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, CREDENTIAL_FILES.cert), c.certPem);
  fs.writeFileSync(path.join(dir, CREDENTIAL_FILES.ca), c.caPem);
}

export interface PeerIdentity {
  /** Subject CN: the id of the certificate's owner (workers.id, controllers.id). */
  commonName: string;
  /** Subject OU: the certificate profile ('worker', 'controller'). */
  profile: string;
  /** Normalised serial (lower-case hex, no leading zeros), as in certificates.serial. */
  serial: string;
}

function first(v: string | string[] | undefined): string {
  return (Array.isArray(v) ? v[0] : v) ?? "";
}

export function identityOf(cert: PeerCertificate | undefined): PeerIdentity | null {
  if (!cert?.subject || !cert.serialNumber) return null;
  return { commonName: first(cert.subject.CN), profile: first(cert.subject.OU), serial: normalizeSerial(cert.serialNumber) };
}

/** The authenticated peer of a TLS socket (the handshake already verified the chain), or null. */
export function peerOf(socket: TLSSocket): PeerIdentity | null {
  if (!socket.authorized) return null;
  return identityOf(socket.getPeerCertificate());
}

/**
 * Server identity for a TLS client: instead of a host name, the server must present a certificate
 * of the expected profile (and owner, when given). Peers are addressed by IP and port; what we
 * care about is who answers, not which name it was reached by.
 */
export function expectPeer(profile: string, commonName?: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const id = identityOf(cert);
    if (!id || id.profile !== profile) return new Error(`peer certificate is not a ${profile} certificate`);
    if (commonName && id.commonName !== commonName) {
      return new Error(`peer certificate belongs to ${id.commonName}, expected ${commonName}`);
    }
    return undefined;
  };
}
