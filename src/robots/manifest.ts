// Uptane manifests, verified before they are stored: the vehicle manifest is signed by the
// robot's primary ECU, and each ECU's version report (signed.ecu_version_manifests[serial]) by
// that ECU. Signatures are ed25519 over the canonical JSON (TUF's, @tufjs/canonical-json) of
// `signed`, hex, as securesystemslib makes them; each is checked against the key an admin
// registered for that ECU (gk_public.ecu_keys). Anything that does not verify is refused and
// nothing is recorded. Each version report must carry what the replay check and the comparison
// with the director's targets need (gk_private.robot_manifest_accepted): its report_counter and
// its installed image (filepath, length, sha256 and/or sha512); its timeserver_time is checked when
// given (aktualizr sends none: the counter alone makes a report single-use). The primary's own
// report must be there, so the whole manifest, which the primary signs, is never accepted twice.
import crypto from "node:crypto";
import { canonicalize } from "@tufjs/canonical-json";
import type pg from "pg";
import { z } from "zod";

const MAX_SIGNATURES = 16;
const MAX_ECUS = 256;

const Signature = z.looseObject({ keyid: z.string().max(128), sig: z.string().regex(/^[0-9a-f]{128}$/, "an ed25519 signature, hex") });
const Signatures = z.array(Signature).min(1).max(MAX_SIGNATURES);
const Serial = z.string().min(1).max(64);

/** TUF's time format (securesystemslib, aktualizr), optionally with a fraction. */
const ReportTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/, "a UTC time as YYYY-MM-DDTHH:MM:SSZ")
  .refine((t) => !Number.isNaN(Date.parse(t)), "not a valid time");
const Hashes = z
  .looseObject({
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "sha256, hex")
      .optional(),
    sha512: z
      .string()
      .regex(/^[0-9a-f]{128}$/, "sha512, hex")
      .optional(),
  })
  .refine((h) => Object.keys(h).length <= 8, "at most 8 hashes")
  .refine((h) => h.sha256 !== undefined || h.sha512 !== undefined, "a sha256 or sha512 hash");
const InstalledImage = z.object({
  filepath: z.string().min(1).max(255),
  fileinfo: z.looseObject({ length: z.int().min(0).max(Number.MAX_SAFE_INTEGER), hashes: Hashes }),
});

const EcuReport = z.object({
  signed: z.looseObject({
    ecu_serial: Serial,
    report_counter: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
    timeserver_time: ReportTime.optional(),
    installed_image: InstalledImage,
  }),
  signatures: Signatures,
});

export const VehicleManifest = z.object({
  signed: z.looseObject({
    primary_ecu_serial: Serial,
    ecu_version_manifests: z
      .record(Serial, EcuReport)
      .refine((m) => Object.keys(m).length <= MAX_ECUS, `at most ${MAX_ECUS} ECU version reports`),
  }),
  signatures: Signatures,
});

/** One version report as the replay check and the comparison take it (robot_manifest_accepted). */
export interface VersionReport {
  serial: string;
  counter: number;
  /** timeserver_time, when the report carries one. */
  time: string | null;
  filepath: string;
  length: number;
  sha256: string | null;
  sha512: string | null;
}

export type Verdict = { ok: true; reports: VersionReport[] } | { ok: false; status: 400 | 422; error: string };

function publicKey(hex: string): crypto.KeyObject {
  return crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(hex, "hex").toString("base64url") }, format: "jwk" });
}

/** Some signature of `signed` verifies with the key (key ids are the signer's label: the signature decides). */
function signedBy(signed: unknown, signatures: z.infer<typeof Signatures>, hex: string): boolean {
  const bytes = Buffer.from(canonicalize(signed));
  const key = publicKey(hex);
  return signatures.some((s) => crypto.verify(null, bytes, key, Buffer.from(s.sig, "hex")));
}

/** Checks a robot's manifest: its shape, then every signature against the robot's ECUs' registered keys. */
export async function verifyManifest(db: pg.Pool, robotId: string, body: unknown): Promise<Verdict> {
  const parsed = VehicleManifest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, status: 400, error: `not an Uptane manifest: ${issue.path.join(".") || "body"}: ${issue.message}` };
  }
  const m = parsed.data;
  const { rows } = await db.query<{ serial: string; is_primary: boolean; public_key: string | null }>(
    "select serial, is_primary, public_key from gk_private.robot_ecu_keys($1)",
    [robotId],
  );
  const ecus = new Map(rows.map((r) => [r.serial, r]));
  const keyOf = (serial: string): { key: string } | { error: string } => {
    const ecu = ecus.get(serial);
    if (!ecu) return { error: `ECU ${serial} is not an ECU of this robot` };
    if (!ecu.public_key) return { error: `ECU ${serial} has no registered key` };
    return { key: ecu.public_key };
  };
  const refuse = (error: string): Verdict => ({ ok: false, status: 422, error });

  const primary = m.signed.primary_ecu_serial;
  if (ecus.has(primary) && !ecus.get(primary)?.is_primary) return refuse(`ECU ${primary} is not this robot's primary ECU`);
  if (!(primary in m.signed.ecu_version_manifests)) return refuse(`the manifest lacks the version report of its primary ECU ${primary}`);
  const pk = keyOf(primary);
  if ("error" in pk) return refuse(pk.error);
  if (!signedBy(m.signed, m.signatures, pk.key)) return refuse(`the manifest is not signed by the primary ECU ${primary}`);
  for (const [serial, report] of Object.entries(m.signed.ecu_version_manifests)) {
    if (report.signed.ecu_serial !== serial) return refuse(`ecu_version_manifests.${serial} reports ECU ${report.signed.ecu_serial}`);
    const k = keyOf(serial);
    if ("error" in k) return refuse(k.error);
    if (!signedBy(report.signed, report.signatures, k.key)) return refuse(`the version report of ECU ${serial} is not signed by its key`);
  }
  const reports = Object.entries(m.signed.ecu_version_manifests).map(([serial, { signed: r }]) => ({
    serial,
    counter: r.report_counter,
    time: r.timeserver_time ?? null,
    filepath: r.installed_image.filepath,
    length: r.installed_image.fileinfo.length,
    sha256: r.installed_image.fileinfo.hashes.sha256 ?? null,
    sha512: r.installed_image.fileinfo.hashes.sha512 ?? null,
  }));
  return { ok: true, reports };
}
