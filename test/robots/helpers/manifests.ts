// Signed Uptane manifests for tests: made by securesystemslib (sign_manifest.py, an independent
// implementation) or in-process with src/tuf/keys.ts, and ECU keys registered as an admin would.
// Every version report carries a report_counter and a timeserver_time (the replay check of
// src/robots/manifest.ts): by default the next value of one counter of this process and now; a
// body that gives either keeps its own (an older or repeated report).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { canonicalize } from "@tufjs/canonical-json";
import { generateKey, type SigningKey, signBytes } from "../../../src/tuf/keys.ts";
import type { Queryable } from "../../helpers/fixtures/index.ts";

export interface SignedManifest {
  manifest: { signed: Record<string, unknown>; signatures: { keyid: string; sig: string }[] };
  /** Each ECU's public key, hex. */
  keys: Record<string, string>;
}

type EcuBodies = Record<string, Record<string, unknown>>;

let lastCounter = 0;
/** The next report counter: above every one this process signed before. */
export function nextReportCounter(): number {
  lastCounter += 1;
  return lastCounter;
}

/** A report time as TUF writes times (whole seconds, Z), `offsetSeconds` from now. */
export function reportTime(offsetSeconds = 0): string {
  return new Date(Math.floor(Date.now() / 1000 + offsetSeconds) * 1000).toISOString().replace(".000Z", "Z");
}

/** Each body with a counter and a time unless it has its own. */
function withFreshness(ecus: EcuBodies): EcuBodies {
  return Object.fromEntries(
    Object.entries(ecus).map(([serial, body]) => [serial, { report_counter: nextReportCounter(), timeserver_time: reportTime(), ...body }]),
  );
}

/** The report of an installed image as Uptane ECUs write it. */
export function installedImage(target: { filepath: string; length: number | string; sha256?: string; sha512?: string }) {
  const hashes: Record<string, string> = {};
  if (target.sha256) hashes.sha256 = target.sha256;
  if (target.sha512) hashes.sha512 = target.sha512;
  return { installed_image: { filepath: target.filepath, fileinfo: { length: Number(target.length), hashes } } };
}

/** securesystemslib makes each ECU's key and signs (python3-securesystemslib). */
export function pythonSignedManifest(primary: string, ecus: EcuBodies): SignedManifest {
  const script = path.join(import.meta.dirname, "sign_manifest.py");
  const r = spawnSync("/usr/bin/python3", [script], { input: JSON.stringify({ primary, ecus: withFreshness(ecus) }), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sign_manifest.py: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const signed = (body: Record<string, unknown>, key: SigningKey) => ({
  signed: body,
  signatures: [signBytes(key, Buffer.from(canonicalize(body)))],
});

/** The same manifest made in-process (ed25519 of node:crypto over @tufjs/canonical-json). */
export function nodeSignedManifest(primary: string, ecus: EcuBodies, extra: Record<string, unknown> = {}): SignedManifest {
  const keys = Object.fromEntries(Object.keys(ecus).map((s) => [s, generateKey()]));
  const reports = Object.fromEntries(
    Object.entries(withFreshness(ecus)).map(([serial, body]) => [serial, signed({ ...body, ecu_serial: serial }, keys[serial])]),
  );
  const manifest = signed({ ...extra, primary_ecu_serial: primary, ecu_version_manifests: reports }, keys[primary]);
  return { manifest, keys: Object.fromEntries(Object.entries(keys).map(([s, k]) => [s, k.key.keyval.public])) };
}

/** Registers each ECU's public key (what an admin does through createEcuKey). */
export async function registerEcuKeys(db: Queryable, robotId: string, keys: Record<string, string>): Promise<void> {
  for (const [serial, publicKey] of Object.entries(keys)) {
    await db.query(
      `insert into gk_public.ecu_keys (ecu_id, team_id, public_key)
       select e.id, e.team_id, $3 from gk_public.ecus e where e.robot_id = $1 and e.serial = $2
       on conflict (ecu_id) do update set public_key = excluded.public_key`,
      [robotId, serial, publicKey],
    );
  }
}
