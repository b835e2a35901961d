// Builds the configured blob store (GK_BLOBS=fs|s3). Filled in by the blob store adapters work.
import type { BlobStore } from "./types.ts";

export async function blobsFromEnv(_env: NodeJS.ProcessEnv, _home: string): Promise<BlobStore | undefined> {
  return undefined;
}
