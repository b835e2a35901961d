// Signing many documents at once (the publish path) must give exactly the documents one-by-one
// signing gives: same bytes, same signatures, in the same order, identical documents included
// (they are signed once and share the signature, ed25519 being deterministic).
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateKey } from "../../src/tuf/keys.ts";
import { canonicalize } from "@tufjs/canonical-json";
import { binCanonical, signCanonical, signCanonicalMany, snapshotCanonical, snapshotSigned } from "../../src/tuf/metadata.ts";

const expires = new Date("2030-01-01T00:00:00Z");
const entry = (i: number) =>
  `"pkg/${i}.bin":{"hashes":{"sha256":"${crypto.createHash("sha256").update(String(i)).digest("hex")}"},"length":${i}}`;

describe("signCanonicalMany", () => {
  it("equals signCanonical document by document: distinct, identical (empty bins) and interleaved, one key or two", async () => {
    const current = generateKey();
    const previous = generateKey();
    const bodies = [
      ...Array.from({ length: 5 }, () => binCanonical(1, expires, "")),
      ...Array.from({ length: 5 }, (_, i) => binCanonical(1, expires, entry(i))),
      binCanonical(2, expires, ""),
      binCanonical(1, expires, ""),
      binCanonical(1, expires, entry(3)),
    ];
    for (const keys of [[current], [current, previous], [current, current]]) {
      const many = await signCanonicalMany(bodies, keys);
      expect(many).toEqual(bodies.map((b) => signCanonical(b, keys)));
      for (const [i, doc] of many.entries()) {
        const parsed = JSON.parse(doc);
        expect(doc.endsWith(`"signed":${bodies[i]}}`)).toBe(true);
        expect(parsed.signatures.map((s: { keyid: string }) => s.keyid)).toEqual([...new Set(keys.map((k) => k.keyid))]);
        for (const s of parsed.signatures) {
          const k = keys.find((x) => x.keyid === s.keyid)!;
          expect(crypto.verify(null, Buffer.from(bodies[i]), k.privateKey, Buffer.from(s.sig, "hex"))).toBe(true);
        }
      }
    }
    expect(await signCanonicalMany([], [current])).toEqual([]);
  });
});

describe("snapshotCanonical", () => {
  it("is byte for byte canonicalize(snapshotSigned(…)), for 1 to 16,384 bins in any input order", () => {
    for (const bins of [2, 16, 256, 16384]) {
      const digits = (bins - 1).toString(16).length;
      const roles = [
        ...Array.from({ length: bins }, (_, b) => ({ role: `bins-${b.toString(16).padStart(digits, "0")}`, version: (b * 7919) % 1000 })),
        { role: "targets", version: 3 },
      ].sort(() => Math.random() - 0.5);
      expect(snapshotCanonical(42, expires, roles)).toBe(canonicalize(snapshotSigned(42, expires, roles)));
    }
  });

  it("refuses a role name it would have to escape", () => {
    expect(() => snapshotCanonical(1, expires, [{ role: 'bins-"x', version: 1 }])).toThrow(/unexpected role name/);
  });
});
