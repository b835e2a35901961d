// What a target may be (migration 0110, sql/400_tuf.sql): paths every client can fetch and store
// safely, digests of their algorithm's length, `custom` and lengths that JSON carries exactly,
// and keys that sort the same in tuf-js (UTF-16), python-tuf (code points) and go-tuf (UTF-8).
// Each refusal is SQLSTATE 22023 with nothing written; what is accepted is published and then
// checked by tuf-js and by securesystemslib (verifyEveryRepository).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { needs } from "../helpers/requirements.ts";
import { binName, binOfPath } from "../../src/tuf/bins.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import { binSigned, signDocument } from "../../src/tuf/metadata.ts";
import { loadOnlineKey } from "../../src/tuf/online-key.ts";
import { verifyRepository } from "./helpers/verifier.ts";
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

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 16 });
});
afterAll(() => fx?.close());

const sha256 = "ab".repeat(32);
const targetCount = async () =>
  Number((await db.query("select count(*) from gk_public.tuf_targets where team_id = $1", [fx.teamId])).rows[0].count);

/** Expects the batch refused with 22023 and the message, and nothing written. */
async function refused(targets: object[], message: RegExp) {
  const before = await targetCount();
  const error = await addTargets(db, fx.teamId, targets).then(
    () => null,
    (e) => e,
  );
  expect(error, JSON.stringify(targets).slice(0, 200)).not.toBeNull();
  expect(error.code).toBe("22023");
  expect(error.message).toMatch(message);
  expect(await targetCount()).toBe(before);
}

/** A path of the form `${prefix}${i}${suffix}` that lands in the bin of `other`. */
function sameBin(other: string, make: (i: number) => string, bitLength = 4): string {
  for (let i = 0; ; i++) if (binOfPath(make(i), bitLength) === binOfPath(other, bitLength)) return make(i);
}
function otherBin(other: string, make: (i: number) => string, bitLength = 4): string {
  for (let i = 0; ; i++) if (binOfPath(make(i), bitLength) !== binOfPath(other, bitLength)) return make(i);
}

describe("target rules", () => {
  it("refuses paths a client cannot fetch or could write outside its directory", async () => {
    const bad: [string, RegExp][] = [
      ["../x", /has a "\." or "\.\." segment/],
      ["a/../../b", /has a "\." or "\.\." segment/],
      ["./x", /has a "\." or "\.\." segment/],
      ["a/.", /has a "\." or "\.\." segment/],
      ["a//b", /has an empty segment/],
      ["dir/", /ends with \//],
      ["/etc/passwd", /starts with \//],
      ["..\\x", /contains a backslash/],
      ["C:\\x", /contains a backslash/],
      ["C:/x", /starts with a drive letter/],
      ["a?b", /contains \?, # or %/],
      ["a#b", /contains \?, # or %/],
      ["a%2Fb", /contains \?, # or %/],
      ["a\u0001b", /contains a control character/],
      ["tab\there", /contains a control character/],
      ["", /is empty/],
      ["x".repeat(1025), /is longer than 1024 bytes/],
      [`${"y".repeat(256)}/z`, /has a segment longer than 255 bytes/],
    ];
    for (const [path, message] of bad) await refused([{ path, length: 1, hashes: { sha256 } }], message);
    // One bad row refuses the whole batch.
    await refused(
      [
        { path: "fine/one.bin", length: 1, hashes: { sha256 } },
        { path: "a/../b", length: 1, hashes: { sha256 } },
      ],
      /target path "a\/\.\.\/b"/,
    );
  });

  it("refuses digests that are not their algorithm's, and unknown algorithms", async () => {
    const bad: [object, RegExp][] = [
      [{ sha256: "ab".repeat(8) }, /sha256 must be 64 hex digits, got 16/],
      [{ sha256: "AB".repeat(32) }, /sha256 must be lower-case hex/],
      [{ sha512: sha256 }, /sha512 must be 128 hex digits, got 64/],
      [{ md5: "ab".repeat(16) }, /md5 is not a known algorithm/],
      [{ sha256, sha1: "ab".repeat(20) }, /sha1 is not a known algorithm/],
      [{ sha256: 12 }, /sha256 must be lower-case hex/],
    ];
    for (const [hashes, message] of bad) await refused([{ path: "h/x.bin", length: 1, hashes }], message);
  });

  it("refuses numbers JSON cannot carry exactly, and custom too deep or too large", async () => {
    const t = (custom: unknown, length = 1) => [{ path: "n/x.bin", length, hashes: { sha256 }, custom }];
    let deep: unknown = 1;
    for (let i = 0; i < 4000; i++) deep = { a: deep };
    let seventeen: unknown = 1;
    for (let i = 0; i < 17; i++) seventeen = { a: seventeen };
    const bad: [object[], RegExp][] = [
      // Sent as text: JSON.stringify would already have rounded them.
      [t({ n: "REPLACE" }), /number 1000000000000000000000 is not an integer between/],
      [t({ n: 0.5 }), /number 0\.5 is not an integer/],
      [t({ list: [1, 1.5] }), /at \$\.list\[1\] number 1\.5/],
      [t({ n: -9007199254740992 }), /number -9007199254740992 is not an integer/],
      [t(deep), /is larger than 16 KiB/],
      [t(seventeen), /is nested deeper than 16 levels/],
      [t({ blob: "x".repeat(17_000) }), /is larger than 16 KiB/],
      [t({ s: "line\nbreak" }), /a string contains a control character/],
      [t([1, 2]), /must be a JSON object/],
    ];
    for (const [targets, message] of bad) {
      const json = JSON.stringify(targets).replace('"REPLACE"', "1000000000000000000000");
      const before = await targetCount();
      const error = await db.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [fx.teamId, json]).then(
        () => null,
        (e) => e,
      );
      expect(error?.code, json.slice(0, 100)).toBe("22023");
      expect(error.message).toMatch(message);
      expect(await targetCount()).toBe(before);
    }
    // 2^53 as a length and as a custom number, written as text so nothing rounds on the way.
    for (const json of [
      `[{"path": "n/x.bin", "length": 9007199254740992, "hashes": {"sha256": "${sha256}"}}]`,
      `[{"path": "n/x.bin", "length": 1, "hashes": {"sha256": "${sha256}"}, "custom": {"n": 9007199254740993}}]`,
      `[{"path": "n/x.bin", "length": 1, "hashes": {"sha256": "${sha256}"}, "custom": {"n": 1.0}}]`,
    ]) {
      await expect(db.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [fx.teamId, json])).rejects.toMatchObject({ code: "22023" });
    }
  });

  it("refuses custom keys, and paths of one bin, that sort differently in UTF-16 and by code point", async () => {
    await refused([{ path: "k/x.bin", length: 1, hashes: { sha256 }, custom: { "file-！": 1, "file-😀": 2 } }], /keys .* sort differently/);
    await refused(
      [{ path: "k/x.bin", length: 1, hashes: { sha256 }, custom: { nested: [{ "\uFF01": 1, "\u{1F600}": 2 }] } }],
      /at \$\.nested\[0\] keys/,
    );
    const bang = "file-！.bin";
    const smiley = sameBin(bang, (i) => `file-😀-${i}.bin`);
    await refused(
      [
        { path: bang, length: 1, hashes: { sha256 } },
        { path: smiley, length: 1, hashes: { sha256 } },
      ],
      /target paths .* sort differently .* share a bin/,
    );
    // One at a time: the second statement sees the first's row in the bin.
    expect(await addTargets(db, fx.teamId, [await storeTarget(fx, bang, "bang")])).toBe(1);
    await refused([{ path: smiley, length: 1, hashes: { sha256 } }], /share a bin/);
    // And an update that renames a path into the conflict.
    await db.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [
      fx.teamId,
      JSON.stringify([{ path: "k/plain.bin", length: 1, hashes: { sha256 } }]),
    ]);
    await expect(
      db.query("update gk_public.tuf_targets set path = $2 where team_id = $1 and path = 'k/plain.bin'", [fx.teamId, smiley]),
    ).rejects.toMatchObject({ code: "22023" });
    await db.query("select gk_public.tuf_remove_targets($1, array['k/plain.bin'])", [fx.teamId]);
  });

  it("accepts unusual but portable targets, and both clients agree on them byte for byte", async () => {
    const bang = "file-！.bin";
    const smileyElsewhere = otherBin(bang, (i) => `file-😀-${i}.bin`);
    const rows = [
      await storeTarget(fx, smileyElsewhere, "smiley", { "😀": 1, "a😀": 2, max: Number.MAX_SAFE_INTEGER, min: -Number.MAX_SAFE_INTEGER }),
      await storeTarget(fx, "日本/ファイル ü.bin", "unicode", { "！": "fullwidth", 日本: [1, { deep: true }] }),
      await storeTarget(fx, ".hidden/a..b/x.tar.gz", "dots"),
      await storeTarget(fx, "with space/and+plus=equals,comma;semi@at!bang.bin", "punctuation"),
    ];
    expect(await addTargets(db, fx.teamId, rows)).toBe(rows.length);
    // A sha512 digest alone is accepted too.
    const sha512 = "cd".repeat(64);
    expect(await addTargets(db, fx.teamId, [{ path: "h/sha512-only.bin", length: 3, hashes: { sha512 } }])).toBe(1);
    await publishNow(db, fx.blobs);
    const client = await Client.create(fx);
    for (const [path, body] of [
      [smileyElsewhere, "smiley"],
      ["日本/ファイル ü.bin", "unicode"],
      [".hidden/a..b/x.tar.gz", "dots"],
      ["with space/and+plus=equals,comma;semi@at!bang.bin", "punctuation"],
      [bang, "bang"],
    ]) {
      expect((await client.download(path)).toString()).toBe(body);
    }
    const u = await client.refresh();
    expect((await u.getTargetInfo(smileyElsewhere))?.custom).toEqual({ "😀": 1, "a😀": 2, max: 9007199254740991, min: -9007199254740991 });
  });

  it.runIf(needs("securesystemslib"))(
    "what the rules prevent: a bin whose paths sort differently is accepted by tuf-js and rejected by securesystemslib",
    async () => {
      const bang = "file-！.bin";
      const smiley = sameBin(bang, (i) => `file-😀-${i}.bin`);
      const role = binName(binOfPath(bang, 4), 4);
      const ts = JSON.parse(Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, "timestamp.json")))!).toString());
      const snapshot = JSON.parse(
        Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, `${ts.signed.meta["snapshot.json"].version}.snapshot.json`)))!).toString(),
      );
      const file = `${snapshot.signed.meta[`${role}.json`].version}.${role}.json`;
      const original = Buffer.from((await fx.blobs.get(metadataKey(fx.teamId, file)))!).toString();
      const version = JSON.parse(original).signed.version;
      const online = await fromPool(db.pool)((c) => loadOnlineKey(c, box, fx.teamId));
      const entry = { length: 4, hashes: { sha256 } };
      // Signed the way the publisher signs (tuf-js's canonical JSON), served in place of the bin.
      const forged = signDocument(
        binSigned(version, new Date(Date.now() + 86_400_000), [
          { path: bang, ...entry, custom: null },
          { path: smiley, ...entry, custom: null },
        ]),
        [online],
      );
      await fx.blobs.put(metadataKey(fx.teamId, file), forged);
      try {
        const u = await (await Client.create(fx)).refresh();
        expect(await u.getTargetInfo(smiley)).toBeDefined();
        const r = await verifyRepository(db, fx);
        expect(r.errors.join("\n")).toMatch(
          new RegExp(`${file.replace(/\./g, "\\.")}: key order differs between UTF-16, code points and UTF-8`),
        );
        expect(r.errors.join("\n")).toMatch(new RegExp(`${file.replace(/\./g, "\\.")}: not signed by a threshold`));
      } finally {
        await fx.blobs.put(metadataKey(fx.teamId, file), original);
      }
    },
  );
});
