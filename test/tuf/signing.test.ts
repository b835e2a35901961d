// Signing many documents at once (the publish path) must give exactly the documents one-by-one
// signing gives: same bytes, same signatures, in the same order, identical documents included
// (they are signed once and share the signature, ed25519 being deterministic).
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateKey } from "../../src/tuf/keys.ts";
import { binCanonical, signCanonical, signCanonicalMany } from "../../src/tuf/metadata.ts";

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
