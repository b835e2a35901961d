// TUF 1.0 documents: `signed` is canonicalized once and signed in-process with Node's ed25519;
// the published document is {"signatures":[…],"signed":<those canonical bytes>}. Bins are
// assembled from their targets' canonical fragments (binCanonical), not from objects.
import { canonicalize } from "@tufjs/canonical-json";
import { BIN_PREFIX } from "./bins.ts";
import { signBytes, signBytesAsync, type PublicKey, type SigningKey } from "./keys.ts";

export const SPEC_VERSION = "1.0.31";

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
export type Signed = { [k: string]: Json };

export interface TargetRow {
  path: string;
  length: number;
  hashes: Record<string, string>;
  custom: Record<string, Json> | null;
}

/** TUF timestamps: UTC, whole seconds. */
export function tufTime(d: Date): string {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export function signDocument(signed: Signed, keys: SigningKey[]): string {
  return signCanonical(canonicalize(signed), keys);
}

/**
 * Signs canonical JSON text and returns the published document. `signed` is written as those
 * very bytes (canonical JSON is JSON: the target rules keep control characters out), so what a
 * client parses and re-canonicalises is exactly what was signed.
 */
export function signCanonical(canonical: string, keys: SigningKey[]): string {
  const bytes = Buffer.from(canonical);
  return published(canonical, JSON.stringify(distinct(keys).map((k) => signBytes(k, bytes))));
}

/**
 * signCanonical for many documents at once, signed in parallel on libuv's threadpool. Identical
 * documents (every empty bin of one version, as at bootstrap) are signed once: ed25519
 * signatures are deterministic (RFC 8032), so this is the very signature signing again gives.
 */
export async function signCanonicalMany(canonicals: string[], keys: SigningKey[]): Promise<string[]> {
  const signers = distinct(keys);
  const byBody = new Map<string, Promise<string>>();
  const sign = async (canonical: string) => {
    const bytes = Buffer.from(canonical);
    return JSON.stringify(await Promise.all(signers.map((k) => signBytesAsync(k, bytes))));
  };
  for (const c of canonicals) if (!byBody.has(c)) byBody.set(c, sign(c));
  return Promise.all(canonicals.map(async (c) => published(c, await byBody.get(c)!)));
}

function published(canonical: string, signaturesJson: string): string {
  return `{"signatures":${signaturesJson},"signed":${canonical}}`;
}

/** A key in both old and new root signs once. */
function distinct(keys: SigningKey[]): SigningKey[] {
  const seen = new Set<string>();
  return keys.filter((k) => !seen.has(k.keyid) && seen.add(k.keyid));
}

function common(type: string, version: number, expires: Date): Signed {
  return { _type: type, spec_version: SPEC_VERSION, version, expires: tufTime(expires) };
}

function keyMap(keys: PublicKey[]): Signed {
  return Object.fromEntries(keys.map((k) => [k.keyid, k.key]));
}

export function rootSigned(o: { version: number; expires: Date; rootKeys: PublicKey[]; threshold: number; online: PublicKey }): Signed {
  const online = { keyids: [o.online.keyid], threshold: 1 };
  return {
    ...common("root", o.version, o.expires),
    consistent_snapshot: true,
    keys: keyMap([...o.rootKeys, o.online]),
    roles: {
      root: { keyids: o.rootKeys.map((k) => k.keyid), threshold: o.threshold },
      targets: online,
      snapshot: online,
      timestamp: online,
    },
  };
}

/** Top-level targets: lists no targets, delegates everything to the hashed bins. */
export function targetsSigned(version: number, expires: Date, online: PublicKey, bitLength: number): Signed {
  return {
    ...common("targets", version, expires),
    targets: {},
    delegations: {
      keys: keyMap([online]),
      succinct_roles: { keyids: [online.keyid], threshold: 1, bit_length: bitLength, name_prefix: BIN_PREFIX },
    },
  };
}

export function binSigned(version: number, expires: Date, targets: TargetRow[]): Signed {
  const map: Signed = {};
  for (const t of targets) {
    const entry: Signed = { length: t.length, hashes: t.hashes };
    if (t.custom) entry.custom = t.custom;
    map[t.path] = entry;
  }
  return { ...common("targets", version, expires), targets: map };
}

/**
 * A bin's `signed` as canonical JSON, around its targets' stored fragments (tuf_targets.fragment,
 * migration 0113) joined in path order: the same bytes as canonicalize(binSigned(…)).
 */
export function binCanonical(version: number, expires: Date, fragments: string): string {
  return `{"_type":"targets","expires":"${tufTime(expires)}","spec_version":"${SPEC_VERSION}","targets":{${fragments}},"version":${version}}`;
}

export function snapshotSigned(version: number, expires: Date, roleVersions: { role: string; version: number }[]): Signed {
  const meta: Signed = {};
  for (const r of roleVersions) meta[`${r.role}.json`] = { version: r.version };
  return { ...common("snapshot", version, expires), meta };
}

/**
 * The snapshot's `signed` as canonical JSON, written directly: the same bytes as
 * canonicalize(snapshotSigned(…)) (test/tuf/signing.test.ts), without building and sorting an
 * object of every bin (16,384 entries at most, signed at every publish). Role names are
 * `targets` and `bins-<hex>` (tuf_roles' CHECK): ASCII, no escaping, and sorted here by UTF-16
 * code units as canonicalize does.
 */
export function snapshotCanonical(version: number, expires: Date, roleVersions: { role: string; version: number }[]): string {
  const meta = roleVersions
    .map((r) => {
      if (!/^[a-z0-9-]+$/.test(r.role)) throw new Error(`unexpected role name ${JSON.stringify(r.role)}`);
      return { file: `${r.role}.json`, version: r.version };
    })
    .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))
    .map((m) => `"${m.file}":{"version":${m.version}}`)
    .join(",");
  return `{"_type":"snapshot","expires":"${tufTime(expires)}","meta":{${meta}},"spec_version":"${SPEC_VERSION}","version":${version}}`;
}

export function timestampSigned(version: number, expires: Date, snapshotVersion: number): Signed {
  return { ...common("timestamp", version, expires), meta: { "snapshot.json": { version: snapshotVersion } } };
}
