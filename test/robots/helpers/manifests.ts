// Signed Uptane manifests for tests: made by securesystemslib (sign_manifest.py, an independent
// implementation) or in-process with src/tuf/keys.ts, and ECU keys registered as an admin would.
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

/** securesystemslib makes each ECU's key and signs (python3-securesystemslib). */
export function pythonSignedManifest(primary: string, ecus: EcuBodies): SignedManifest {
  const script = path.join(import.meta.dirname, "sign_manifest.py");
  const r = spawnSync("/usr/bin/python3", [script], { input: JSON.stringify({ primary, ecus }), encoding: "utf8" });
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
    Object.entries(ecus).map(([serial, body]) => [serial, signed({ ...body, ecu_serial: serial, report_counter: 1 }, keys[serial])]),
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
