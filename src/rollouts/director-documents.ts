// A robot's director metadata as TUF documents: targets list exactly the image each ECU must
// run (the ECU serials and hardware ids in custom.ecuIdentifiers, as Uptane clients expect),
// snapshot names that targets version, timestamp that snapshot version. Canonical JSON and
// signing are src/tuf/metadata.ts's (signDocument), so both repositories sign the same way.
import type { SigningKey } from "../tuf/keys.ts";
import { SPEC_VERSION, type Signed, signDocument, tufTime } from "../tuf/metadata.ts";

/** One row of gk_private.director_targets: an ECU and the image it must run. */
export interface EcuTarget {
  robot_id: string;
  ecu_serial: string;
  hardware_id: string;
  rollout_id: string | null;
  image_name: string;
  image_version: string;
  length: string | number;
  sha256: string;
  sha512: string;
}

export interface DirectorVersions {
  targets: number;
  snapshot: number;
  timestamp: number;
}

export interface DirectorDocuments {
  targets: string;
  snapshot: string;
  timestamp: string;
  /** The soonest expiry of the three. */
  expires: Date;
}

/** The target name of an image: what the image repository lists it under too. */
export function imageTargetName(name: string, version: string): string {
  return `${name}-${version}`;
}

export function directorTargetsSigned(version: number, expires: Date, ecus: EcuTarget[]): Signed {
  const targets: Record<string, { length: number; hashes: Signed; custom: { ecuIdentifiers: Signed; rolloutIds: string[] } }> = {};
  for (const e of ecus) {
    const name = imageTargetName(e.image_name, e.image_version);
    targets[name] ??= {
      length: Number(e.length),
      hashes: { sha256: e.sha256, sha512: e.sha512 },
      custom: { ecuIdentifiers: {}, rolloutIds: [] },
    };
    const t = targets[name];
    t.custom.ecuIdentifiers[e.ecu_serial] = { hardwareId: e.hardware_id };
    if (e.rollout_id && !t.custom.rolloutIds.includes(e.rollout_id)) t.custom.rolloutIds.push(e.rollout_id);
  }
  return { _type: "targets", spec_version: SPEC_VERSION, version, expires: tufTime(expires), targets: targets as unknown as Signed };
}

/** Signs the three documents of one robot at versions `v` (each the stored version + 1). */
export function signDirectorDocuments(
  key: SigningKey,
  v: DirectorVersions,
  now: number,
  lifetimes: { targets: number; snapshot: number; timestamp: number },
  ecus: EcuTarget[],
): DirectorDocuments {
  const at = (seconds: number) => new Date(now + seconds * 1000);
  const targetsExpires = at(lifetimes.targets);
  const snapshotExpires = at(lifetimes.snapshot);
  const timestampExpires = at(lifetimes.timestamp);
  const common = (type: string, version: number, expires: Date) => ({
    _type: type,
    spec_version: SPEC_VERSION,
    version,
    expires: tufTime(expires),
  });
  return {
    targets: signDocument(directorTargetsSigned(v.targets, targetsExpires, ecus), [key]),
    snapshot: signDocument({ ...common("snapshot", v.snapshot, snapshotExpires), meta: { "targets.json": { version: v.targets } } }, [key]),
    timestamp: signDocument({ ...common("timestamp", v.timestamp, timestampExpires), meta: { "snapshot.json": { version: v.snapshot } } }, [
      key,
    ]),
    expires: new Date(Math.min(targetsExpires.getTime(), snapshotExpires.getTime(), timestampExpires.getTime())),
  };
}
