// The external parts tasks act on. One instance per process, built from configuration; tests
// build their own (real local CA, real filesystem/S3 stores...) and pass them to the runner.
import type { Logger } from "pino";
import type { CertificateAuthority } from "./adapters/ca/types.ts";
import type { BlobStore } from "./adapters/blobs/types.ts";
import type { SecretBox } from "./lib/secrets.ts";
import type { ControllerIdentity } from "./peers/controller.ts";

export interface Services {
  log: Logger;
  /** Certificate authority (issue, fetch, revoke, CRL). */
  ca?: CertificateAuthority;
  /** Object storage for team blobs and published TUF metadata. */
  blobs?: BlobStore;
  /** Seals secrets at rest under the master key (CA-generated private keys parked for download). */
  secrets?: SecretBox;
  /** Groundskeeper's certificate towards its peers (agents), shared by every process. */
  controller?: ControllerIdentity;
}

export function requireService<K extends keyof Services>(services: Services, key: K): NonNullable<Services[K]> {
  const s = services[key];
  if (!s) throw new Error(`service '${String(key)}' is not configured in this worker`);
  return s as NonNullable<Services[K]>;
}
