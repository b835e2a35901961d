// Builds the configured blob store: GK_BLOBS=fs (default, under <home>/blobs) | s3.
import path from "node:path";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { FsBlobStore } from "./fs.ts";
import type { BlobStore } from "./types.ts";

const BlobsEnv = z.object({
  GK_BLOBS: z.enum(["fs", "s3"]).default("fs"),
  GK_BLOBS_DIR: z.string().min(1).optional(),
  GK_S3_ENDPOINT: z.url().optional(),
  GK_S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "not a valid bucket name")
    .optional(),
  GK_S3_REGION: z.string().min(1).optional(),
  GK_S3_FORCE_PATH_STYLE: z.enum(["0", "1", "true", "false"]).optional(),
  GK_S3_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
});

export async function blobsFromEnv(env: NodeJS.ProcessEnv, home: string): Promise<BlobStore | undefined> {
  const parsed = BlobsEnv.safeParse(env);
  if (!parsed.success) {
    throw new UserError(
      `invalid blob store configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  const cfg = parsed.data;
  if (cfg.GK_BLOBS === "fs") return new FsBlobStore(path.resolve(cfg.GK_BLOBS_DIR ?? path.join(home, "blobs")));
  if (!cfg.GK_S3_BUCKET) throw new UserError("GK_BLOBS=s3 needs GK_S3_BUCKET");
  // Static keys from the given environment, else the SDK's default chain (profiles, roles…).
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  // The S3 client is loaded only when the store is S3: this file is imported by every command.
  const { S3BlobStore } = await import("./s3.ts");
  return new S3BlobStore({
    ...(credentials ? { credentials } : {}),
    bucket: cfg.GK_S3_BUCKET,
    ...(cfg.GK_S3_ENDPOINT ? { endpoint: cfg.GK_S3_ENDPOINT } : {}),
    region: cfg.GK_S3_REGION ?? env.AWS_REGION ?? "us-east-1",
    forcePathStyle: cfg.GK_S3_FORCE_PATH_STYLE ? ["1", "true"].includes(cfg.GK_S3_FORCE_PATH_STYLE) : Boolean(cfg.GK_S3_ENDPOINT),
    maxAttempts: cfg.GK_S3_MAX_ATTEMPTS,
  });
}
