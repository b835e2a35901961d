// The client checks are real: metadata a repository must never serve — a tampered bin, an
// expired timestamp, a rolled-back snapshot — is rejected by tuf-js. Each case first shows the
// untampered state is accepted, so the rejection is caused by the tampering.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { needs } from "../helpers/requirements.ts";
import { verifyRepository } from "./helpers/verifier.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import { signDocument, snapshotSigned, timestampSigned } from "../../src/tuf/metadata.ts";
import { loadOnlineKey } from "../../src/tuf/online-key.ts";
import type { SigningKey } from "../../src/tuf/keys.ts";
import {
  addTargets,
  box,
  Client,
  publishNow,
  setupRepository,
  storeTarget,
  type TufFixture,
  verifyEveryRepository,
} from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;
let online: SigningKey;
const target = "apps/navigation-4.0.0.tar";

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 16 });
  online = await fromPool(db.pool)((c) => loadOnlineKey(c, box, fx.teamId));
  // A few publishes, so that there is history to roll back to.
  for (const v of ["1", "2", "3"]) {
    await addTargets(db, fx.teamId, [await storeTarget(fx, `apps/v${v}.tar`, `v${v}`)]);
    await publishNow(db, fx.blobs);
  }
  await addTargets(db, fx.teamId, [await storeTarget(fx, target, "navigation 4.0.0")]);
  await publishNow(db, fx.blobs);
});
afterAll(() => fx?.close());

const raw = async (file: string) => Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, file)))!).toString();
const get = async (file: string) => JSON.parse(await raw(file));
const put = (file: string, doc: unknown) => fx.blobs.put(metadataKey(fx.teamId, file), typeof doc === "string" ? doc : JSON.stringify(doc));
const inDays = (d: number) => new Date(Date.now() + d * 86_400_000);

describe("the client rejects what must be rejected", () => {
  it("a tampered bin (a target's hash changed, signature kept)", async () => {
    const good = await Client.create(fx);
    expect((await good.download(target)).toString()).toBe("navigation 4.0.0");

    const ts = await get("timestamp.json");
    const snapshot = await get(`${ts.signed.meta["snapshot.json"].version}.snapshot.json`);
    const { rows } = await db.query("select 'bins-' || to_hex(gk_public.tuf_bin_of($1, 4)) as bin", [target]);
    const binFile = `${snapshot.signed.meta[`${rows[0].bin}.json`].version}.${rows[0].bin}.json`;
    const original = Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, binFile)))!).toString();
    const bin = JSON.parse(original);
    bin.signed.targets[target].hashes.sha256 = "ab".repeat(32);
    await put(binFile, bin);
    try {
      if (needs("securesystemslib")) {
        // The second verifier sees it too: the served file is not what was stored and signed.
        const r = await verifyRepository(db, fx);
        expect(r.ok).toBe(false);
        expect(r.errors).toContain(`${binFile}: served file differs from the stored document`);
        expect(r.errors.join("\n")).toMatch(new RegExp(`${binFile.replace(/\./g, "\\.")}: not signed by the bins delegation`));
      }
      const fresh = await Client.create(fx);
      const u = await fresh.refresh();
      await expect(u.getTargetInfo(target)).rejects.toThrow(/bins-[0-9a-f] was signed by 0\/1 keys/);
    } finally {
      await put(binFile, original);
    }
  });

  it("an expired timestamp (validly signed by the online key)", async () => {
    const client = await Client.create(fx);
    await client.refresh();
    const original = await raw("timestamp.json");
    const current = JSON.parse(original);
    const expired = signDocument(
      timestampSigned(current.signed.version + 1, new Date(Date.now() - 60_000), current.signed.meta["snapshot.json"].version),
      [online],
    );
    await put("timestamp.json", expired);
    try {
      await expect(client.refresh()).rejects.toThrow("Final timestamp.json is expired");
      await expect((await Client.create(fx)).refresh()).rejects.toThrow("Final timestamp.json is expired");
    } finally {
      await put("timestamp.json", original);
    }
    await client.refresh();
  });

  it("a rolled-back snapshot: a new timestamp pointing at an older snapshot", async () => {
    const client = await Client.create(fx);
    await client.refresh();
    const original = await raw("timestamp.json");
    const current = JSON.parse(original);
    const snapVersion = current.signed.meta["snapshot.json"].version;
    const rollback = signDocument(timestampSigned(current.signed.version + 1, inDays(1), snapVersion - 2), [online]);
    await put("timestamp.json", rollback);
    try {
      await expect(client.refresh()).rejects.toThrow(/New snapshot version \d+ is less than current version/);
    } finally {
      await put("timestamp.json", original);
    }
  });

  it("a rolled-back bin: a newer snapshot listing an older version of a bin", async () => {
    const client = await Client.create(fx);
    await client.refresh();
    const original = await raw("timestamp.json");
    const current = JSON.parse(original);
    const snapVersion = current.signed.meta["snapshot.json"].version;
    const snapshot = await get(`${snapVersion}.snapshot.json`);
    const [binRole, meta] = Object.entries<any>(snapshot.signed.meta).find(([k, m]) => k.startsWith("bins-") && m.version > 1)!;
    const roles = Object.entries<any>(snapshot.signed.meta).map(([k, m]) => ({
      role: k.replace(/\.json$/, ""),
      version: k === binRole ? meta.version - 1 : m.version,
    }));
    await put(`${snapVersion + 1}.snapshot.json`, signDocument(snapshotSigned(snapVersion + 1, inDays(1), roles), [online]));
    await put("timestamp.json", signDocument(timestampSigned(current.signed.version + 1, inDays(1), snapVersion + 1), [online]));
    try {
      await expect(client.refresh()).rejects.toThrow(/New version \d+ of bins-[0-9a-f].json is less than current version/);
    } finally {
      await put("timestamp.json", original);
      await fx.blobs.deleteMany([metadataKey(fx.teamId, `${snapVersion + 1}.snapshot.json`)]);
    }
  });

  it("a timestamp not signed by the online key", async () => {
    const client = await Client.create(fx);
    await client.refresh();
    const original = await raw("timestamp.json");
    const current = JSON.parse(original);
    const { generateKey } = await import("../../src/tuf/keys.ts");
    const forged = signDocument(timestampSigned(current.signed.version + 1, inDays(1), current.signed.meta["snapshot.json"].version), [
      generateKey(),
    ]);
    await put("timestamp.json", forged);
    try {
      if (needs("securesystemslib")) expect((await verifyRepository(db, fx)).errors.join("\n")).toMatch(/timestamp\.json: not signed/);
      await expect(client.refresh()).rejects.toThrow("timestamp was signed by 0/1 keys");
    } finally {
      await put("timestamp.json", original);
    }
  });
});
