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
import { rootSigned, signDocument } from "../../src/tuf/metadata.ts";
import { rotateRoot } from "../../src/tuf/rotate.ts";
import {
  addTargets,
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
});
