// S3 blob store (@aws-sdk/client-s3): works with AWS S3 and S3-protocol servers (path-style).
// PutObject is atomic on S3; list = ListObjectsV2 with StartAfter/MaxKeys; deletes go in
// DeleteObjects batches of ≤ 1000. Network failures and 5xx become BlobStoreUnavailableError.
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  type DeleteObjectsCommandOutput,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandOutput,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { mapLimit } from "../../lib/map-limit.ts";
import { assertValidKey, assertValidLimit, assertValidPrefix } from "./keys.ts";
import { BlobStoreUnavailableError, type BlobStore, type BlobStream, type ListPage } from "./types.ts";

export interface S3BlobStoreOptions {
  bucket: string;
  /** Custom endpoint (S3-compatible servers); AWS when absent. */
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per request (1 = no retry: the job queue retries with back-off). Default 3. */
  maxAttempts?: number;
  /** Per-request timeout in ms. Default 30 s. */
  requestTimeoutMs?: number;
}

export const S3_DELETE_BATCH = 1000;
export const S3_DELETE_PARALLEL = 4;

export class S3BlobStore implements BlobStore {
  readonly kind = "s3";
  readonly bucket: string;
  readonly client: S3Client;

  constructor(opts: S3BlobStoreOptions) {
    this.bucket = opts.bucket;
    const config: S3ClientConfig = {
      region: opts.region ?? "us-east-1",
      forcePathStyle: opts.forcePathStyle ?? Boolean(opts.endpoint),
      maxAttempts: opts.maxAttempts ?? 3,
      // Only the checksums S3 requires: S3-compatible servers often reject the newer defaults.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 30_000, connectionTimeout: 5_000 },
    };
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
  }

  async put(key: string, body: Uint8Array | string, opts?: { contentType?: string }): Promise<void> {
    assertValidKey(key);
    await this.#send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: typeof body === "string" ? Buffer.from(body) : body,
        ContentType: opts?.contentType ?? "application/octet-stream",
      }),
    );
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertValidKey(key);
    try {
      const out = await this.#send<GetObjectCommandOutput>(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (e instanceof NoSuchKey || (e as { name?: string }).name === "NoSuchKey") return null;
      throw e;
    }
  }

  async getStream(key: string, opts: { signal?: AbortSignal } = {}): Promise<BlobStream | null> {
    assertValidKey(key);
    try {
      const out = await this.#send<GetObjectCommandOutput>(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        opts.signal ? { abortSignal: opts.signal } : undefined,
      );
      // Under Node the SDK's body is the HTTP response itself (an IncomingMessage): read as it arrives.
      const body = out.Body instanceof Readable ? out.Body : Readable.from([]);
      return { body, ...(out.ContentLength === undefined ? {} : { length: out.ContentLength }) };
    } catch (e) {
      if (e instanceof NoSuchKey || (e as { name?: string }).name === "NoSuchKey") return null;
      throw e;
    }
  }

  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage> {
    assertValidPrefix(prefix);
    assertValidLimit(opts.limit);
    const out = await this.#send<ListObjectsV2CommandOutput>(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: prefix,
        MaxKeys: opts.limit,
        ...(opts.after !== undefined && opts.after !== "" ? { StartAfter: opts.after } : {}),
      }),
    );
    const keys = (out.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key]));
    return out.IsTruncated && keys.length > 0 ? { keys, next: keys[keys.length - 1]! } : { keys };
  }

  /** Batches of ≤ 1000 keys, up to S3_DELETE_PARALLEL DeleteObjects calls at once. */
  async deleteMany(keys: string[]): Promise<void> {
    for (const k of keys) assertValidKey(k);
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += S3_DELETE_BATCH) batches.push(keys.slice(i, i + S3_DELETE_BATCH));
    await mapLimit(batches, S3_DELETE_PARALLEL, async (batch) => {
      const out = await this.#send<DeleteObjectsCommandOutput>(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      // Missing keys are not errors on S3; anything reported here is a real failure.
      const errors = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (errors.length > 0) {
        const first = errors[0]!;
        throw new Error(
          `S3 DeleteObjects failed for ${errors.length} key(s), e.g. ${first.Key}: ${first.Code} ${first.Message ?? ""}`.trim(),
        );
      }
    });
  }

  destroy(): void {
    this.client.destroy();
  }

  async #send<O>(command: object, options?: { abortSignal?: AbortSignal }): Promise<O> {
    try {
      return (await this.client.send(command as never, options as never)) as O;
    } catch (e) {
      if (isUnavailable(e)) throw new BlobStoreUnavailableError(`S3 ${this.bucket} unreachable: ${describe(e)}`, { cause: e });
      throw e;
    }
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
]);

function isUnavailable(e: unknown): boolean {
  const err = e as { code?: string; name?: string; $metadata?: { httpStatusCode?: number }; cause?: unknown; errors?: unknown[] };
  if (err?.code && NETWORK_CODES.has(err.code)) return true;
  if (err?.name === "TimeoutError" || err?.name === "RequestTimeout") return true;
  const status = err?.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (Array.isArray(err?.errors) && err.errors.some(isUnavailable)) return true; // AggregateError (happy eyeballs)
  return err?.cause !== undefined && err.cause !== e && isUnavailable(err.cause);
}

function describe(e: unknown): string {
  const err = e as { code?: string; name?: string; message?: string };
  return [err.code ?? err.name, err.message].filter(Boolean).join(": ");
}
