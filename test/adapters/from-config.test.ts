// Building the adapters from the environment: defaults, choices and clear errors.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { blobsFromEnv } from "../../src/adapters/blobs/from-config.ts";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { S3BlobStore } from "../../src/adapters/blobs/s3.ts";
import { CfsslCa } from "../../src/adapters/ca/cfssl.ts";
import { caFromEnv } from "../../src/adapters/ca/from-config.ts";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import type { TimedCertificateAuthority } from "../../src/adapters/ca/timeout.ts";
import { UserError } from "../../src/lib/errors.ts";
import { createTestDb } from "../helpers/db.ts";
import { startS3Server } from "../helpers/s3.ts";

const db = await createTestDb();
const home = fs.mkdtempSync(path.join(os.tmpdir(), "gk-home-"));
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

describe("blobsFromEnv", () => {
  it("defaults to the filesystem under <home>/blobs", async () => {
    const s = await blobsFromEnv({}, home);
    expect(s).toBeInstanceOf(FsBlobStore);
    expect((s as FsBlobStore).root).toBe(path.join(home, "blobs"));
  });

  it("builds an S3 store that really talks to the configured endpoint", async () => {
    const server = await startS3Server("gk-config");
    try {
      const s = await blobsFromEnv(
        {
          GK_BLOBS: "s3",
          GK_S3_ENDPOINT: server.endpoint,
          GK_S3_BUCKET: "gk-config",
          AWS_ACCESS_KEY_ID: "S3RVER",
          AWS_SECRET_ACCESS_KEY: "S3RVER",
        },
        home,
      );
      expect(s).toBeInstanceOf(S3BlobStore);
      await s!.put("cfg/x", "y");
      expect(Buffer.from((await s!.get("cfg/x"))!).toString()).toBe("y");
      (s as S3BlobStore).destroy();
    } finally {
      await server.dispose();
    }
  });

  it("rejects bad configuration with one clear line", async () => {
    await expect(blobsFromEnv({ GK_BLOBS: "ftp" }, home)).rejects.toThrow(UserError);
    await expect(blobsFromEnv({ GK_BLOBS: "s3" }, home)).rejects.toThrow(/GK_S3_BUCKET/);
    await expect(blobsFromEnv({ GK_BLOBS: "s3", GK_S3_BUCKET: "b", GK_S3_ENDPOINT: "not a url" }, home)).rejects.toThrow(
      /GK_S3_ENDPOINT|GK_S3_BUCKET/,
    );
  });
});

describe("caFromEnv", () => {
  it("defaults to the local CA on the database, with its options", async () => {
    const ca = await caFromEnv({ GK_CA_DEFERRED: "1", GK_CA_NAME: "cfgtest" }, home, { pool: db.pool });
    const timed = ca as TimedCertificateAuthority;
    expect(timed.inner).toBeInstanceOf(LocalCa);
    expect(timed.timeoutMs).toBe(30_000); // every CA call has a deadline
    expect((timed.inner as LocalCa).deferred).toBe(true);
    const r = await ca!.issue({ commonName: "c", profile: "robot", notAfter: new Date(Date.now() + 86400_000) });
    expect(r.serial).toBeNull();
    expect(fs.existsSync(path.join(home, "master.key"))).toBe(true); // the embedded master key
  });

  it("builds the cfssl adapter from GK_CFSSL_URL", async () => {
    const ca = await caFromEnv({ GK_CA: "cfssl", GK_CFSSL_URL: "http://127.0.0.1:8888", GK_CA_TIMEOUT_MS: "5000" }, home);
    expect((ca as TimedCertificateAuthority).inner).toBeInstanceOf(CfsslCa);
    expect((ca as TimedCertificateAuthority).timeoutMs).toBe(5000);
    await expect(caFromEnv({ GK_CA: "cfssl" }, home)).rejects.toThrow(/GK_CFSSL_URL/);
  });

  it("has no local CA without a database pool", async () => {
    expect(await caFromEnv({}, home)).toBeUndefined();
  });

  it("rejects bad configuration with one clear line", async () => {
    await expect(caFromEnv({ GK_CA: "vault" }, home, { pool: db.pool })).rejects.toThrow(UserError);
    await expect(caFromEnv({ GK_CA_DEFERRED: "maybe" }, home, { pool: db.pool })).rejects.toThrow(/GK_CA_DEFERRED/);
    await expect(caFromEnv({ GK_CA_TIMEOUT_MS: "0" }, home, { pool: db.pool })).rejects.toThrow(/GK_CA_TIMEOUT_MS/);
  });
});
