// Builds the configured certificate authority (GK_CA=local|cfssl). Filled in by the CA adapters work.
import type { CertificateAuthority } from "./types.ts";

export async function caFromEnv(_env: NodeJS.ProcessEnv, _home: string): Promise<CertificateAuthority | undefined> {
  return undefined;
}
