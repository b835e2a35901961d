// Root rotation from key files: root N+1 must carry a threshold of root N's keys and of its
// own. The client walks the chain (1 → 2 → 3) and ends up trusting the newest root.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { generateKeyFiles, readKeyFile } from "../../src/tuf/keys.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import { publicKeyOf } from "../../src/tuf/keys.ts";
import { rootSigned, signDocument, timestampSigned } from "../../src/tuf/metadata.ts";
import { loadOnlineKey } from "../../src/tuf/online-key.ts";
import { signDirty, uploadPending } from "../../src/tuf/publish.ts";
import { rotateRoot } from "../../src/tuf/rotate.ts";
import {
  addTargets,
  box,
  Client,
  publishNow,
  setupRepository,
  storeTarget,
  tmpDir,
  type TufFixture,
  verifyEveryRepository,
} from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
let fx: TufFixture;
let client: Client;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 4, keys: 3, threshold: 2 });
  client = await Client.create(fx);
  await client.refresh();
});
afterAll(() => fx?.close());

const rootVersion = async () =>
  (await db.query("select root_version from gk_public.tuf_repositories where team_id = $1", [fx.teamId])).rows[0].root_version;

describe("root rotation", () => {
  it("init wrote the root private keys to 0600 files and kept only public keys in the database", async () => {
    expect(fx.keyFiles).toHaveLength(3);
    for (const f of fx.keyFiles) {
      expect(fs.statSync(f).mode & 0o777).toBe(0o600);
      const k = readKeyFile(f);
      expect(fx.rootKeyIds).toContain(k.keyid);
    }
    const dump = JSON.stringify((await db.query("select * from gk_public.tuf_metadata where team_id = $1", [fx.teamId])).rows);
    expect(dump).not.toMatch(/PRIVATE KEY/);
  });

  it("refuses too few old keys, or keys that are not root's, and changes nothing", async () => {
    const newKeys = generateKeyFiles(tmpDir("new"), fx.team, 2).map((k) => k.file);
    await expect(rotateRoot(fromPool(db.pool), { team: fx.team, oldKeyFiles: [fx.keyFiles[0]], newKeyFiles: newKeys })).rejects.toThrow(
      /needs 2 of its keys, got 1/,
    );
    await expect(
      rotateRoot(fromPool(db.pool), { team: fx.team, oldKeyFiles: [fx.keyFiles[0], newKeys[0]], newKeyFiles: newKeys }),
    ).rejects.toThrow(/not a key of root v1/);
    expect(await rootVersion()).toBe(1);
  });

  it("a client rejects a root N+1 signed only by the new keys", async () => {
    const newKeys = generateKeyFiles(tmpDir("rogue"), fx.team, 1).map((k) => readKeyFile(k.file));
    const online = (await db.query("select online_public_key from gk_public.tuf_repositories where team_id = $1", [fx.teamId])).rows[0];
    const rogue = signDocument(
      rootSigned({
        version: 2,
        expires: new Date(Date.now() + 86_400_000),
        rootKeys: newKeys,
        threshold: 1,
        online: publicKeyOf(online.online_public_key),
      }),
      newKeys,
    );
    await fx.blobs.put(metadataKey(fx.teamId, "2.root.json"), rogue);
    try {
      await expect((await Client.create(fx)).refresh()).rejects.toThrow("root was signed by 0/2 keys");
    } finally {
      await fx.blobs.deleteMany([metadataKey(fx.teamId, "2.root.json")]);
    }
  });

  it("rotates 1 → 2 → 3 and the client follows the chain, then keeps accepting publishes", async () => {
    const dir = tmpDir("rot");
    const second = generateKeyFiles(dir, `${fx.team}.v2`, 3).map((k) => k.file);
    const r2 = await rotateRoot(fromPool(db.pool), { team: fx.team, oldKeyFiles: fx.keyFiles.slice(1), newKeyFiles: second, threshold: 2 });
    expect(r2.version).toBe(2);
    await publishNow(db, fx.blobs); // the scheduled publish uploads 2.root.json
    await client.refresh();
    expect(client.trusted("root").signed.version).toBe(2);

    const third = generateKeyFiles(dir, `${fx.team}.v3`, 1).map((k) => k.file);
    await rotateRoot(fromPool(db.pool), { team: fx.team, oldKeyFiles: second.slice(0, 2), newKeyFiles: third });
    await publishNow(db, fx.blobs);
    // A client that only ever saw root v1 walks 1 → 2 → 3.
    const late = await Client.create(fx);
    await late.refresh();
    expect(late.trusted("root").signed.version).toBe(3);
    expect(late.trusted("root").signed.roles.root).toEqual({ keyids: [readKeyFile(third[0]).keyid], threshold: 1 });

    await addTargets(db, fx.teamId, [await storeTarget(fx, "after/rotation.bin", "rotated")]);
    await publishNow(db, fx.blobs);
    expect((await client.download("after/rotation.bin")).toString()).toBe("rotated");
    expect(client.trusted("root").signed.version).toBe(3);
    // The old v1 keys can no longer rotate.
    await expect(rotateRoot(fromPool(db.pool), { team: fx.team, oldKeyFiles: fx.keyFiles, newKeyFiles: third })).rejects.toThrow(
      /not a key of root v3/,
    );
    expect(path.basename(third[0])).toMatch(/\.json$/);
  });

  it("online-key rotation: root N+1 names a new online key, every role is re-signed, clients on either root keep working", async () => {
    const ox = await setupRepository(db, { bins: 4, keys: 2, threshold: 1 });
    try {
      await addTargets(db, ox.teamId, [await storeTarget(ox, "before/rotation.bin", "before")]);
      await publishNow(db, ox.blobs);
      const early = await Client.create(ox);
      expect((await early.download("before/rotation.bin")).toString()).toBe("before");
      const oldKey = await fromPool(db.pool)((c) => loadOnlineKey(c, box, ox.teamId));

      const r = await rotateRoot(fromPool(db.pool), {
        team: ox.team,
        oldKeyFiles: [ox.keyFiles[0]],
        newKeyFiles: ox.keyFiles, // the same root keys: only the online key changes
        rotateOnlineKey: true,
        box,
      });
      expect(r.onlineKeyId).not.toBe(oldKey.keyid);
      // Committed but not published: every online role is dirty, clients still see the old state.
      const dirty = (await db.query("select count(*)::int as n from gk_public.tuf_roles where team_id = $1 and not dirty", [ox.teamId]))
        .rows[0];
      expect(dirty.n).toBe(0);
      await early.refresh();
      expect(early.trusted("root").signed.version).toBe(1);

      // The publish re-signs every role with the new key and the old one, uploads the timestamp,
      // then 2.root.json. A client that has not fetched root v2 yet accepts all of it.
      await signDirty(fromPool(db.pool), box, ox.teamId);
      await uploadPending(fromPool(db.pool), ox.blobs, ox.teamId);
      const root2 = await ox.blobs.get(metadataKey(ox.teamId, "2.root.json"));
      expect(root2).not.toBeNull();
      await ox.blobs.deleteMany([metadataKey(ox.teamId, "2.root.json")]);
      const stale = await Client.create(ox);
      expect((await stale.download("before/rotation.bin")).toString()).toBe("before");
      expect(
        stale
          .trusted("timestamp")
          .signatures.map((x: { keyid: string }) => x.keyid)
          .sort(),
      ).toEqual([oldKey.keyid, r.onlineKeyId].sort());
      await ox.blobs.put(metadataKey(ox.teamId, "2.root.json"), root2!);

      // With root v2 the client trusts only the new key for every online role.
      await early.refresh();
      const root = early.trusted("root").signed;
      expect(root.version).toBe(2);
      for (const role of ["targets", "snapshot", "timestamp"]) expect(root.roles[role].keyids).toEqual([r.onlineKeyId]);
      expect(Object.keys(early.trusted("targets").signed.delegations.keys)).toEqual([r.onlineKeyId]);

      // From now on the old key signs nothing, and what it signs is refused.
      await addTargets(db, ox.teamId, [await storeTarget(ox, "after/rotation.bin", "after")]);
      await publishNow(db, ox.blobs);
      expect((await early.download("after/rotation.bin")).toString()).toBe("after");
      expect(early.trusted("timestamp").signatures.map((x: { keyid: string }) => x.keyid)).toEqual([r.onlineKeyId]);
      const original = Buffer.from((await ox.blobs.get(metadataKey(ox.teamId, "timestamp.json")))!).toString();
      const current = JSON.parse(original);
      const forged = signDocument(
        timestampSigned(current.signed.version + 1, new Date(Date.now() + 86_400_000), current.signed.meta["snapshot.json"].version),
        [oldKey],
      );
      await ox.blobs.put(metadataKey(ox.teamId, "timestamp.json"), forged);
      try {
        await expect(early.refresh()).rejects.toThrow("timestamp was signed by 0/1 keys");
      } finally {
        await ox.blobs.put(metadataKey(ox.teamId, "timestamp.json"), original);
      }
    } finally {
      await ox.close();
    }
  });
});
