// The bin computed in SQL must be the one clients compute (tuf-js SuccinctRoles), for every
// bin count; otherwise a client looks for a target in a bin that does not list it.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
// Not exported from the package index; the class tuf-js's client uses for succinct roles.
import { SuccinctRoles } from "@tufjs/models/dist/role.js";
import { createTestDb } from "../helpers/db.ts";
import { binName, binOfPath, bitLengthFor } from "../../src/tuf/bins.ts";
import { binRuns } from "../../src/tuf/publish.ts";

const db = await createTestDb();

function randomPath(i: number): string {
  const alphabet = ["a", "Z", "0", "/", "-", "_", ".", "é", "ß", "日本", "🚀", " "];
  const n = 1 + (crypto.randomBytes(1)[0] % 40);
  return Array.from({ length: n }, () => alphabet[crypto.randomBytes(1)[0] % alphabet.length]).join("") + i;
}

describe("hashed bins", () => {
  it("SQL tuf_bin_of equals tuf-js SuccinctRoles.getRoleForTarget for 3,000 random paths and every bit length", async () => {
    const paths = Array.from({ length: 3000 }, (_, i) => randomPath(i));
    for (const bitLength of [1, 2, 3, 4, 7, 8, 11, 14]) {
      const roles = new SuccinctRoles({ keyIDs: ["k"], threshold: 1, bitLength, namePrefix: "bins" });
      const { rows } = await db.query("select p, gk_public.tuf_bin_of(p, $2) as bin from unnest($1::text[]) p", [paths, bitLength]);
      for (const r of rows) {
        expect(binName(r.bin, bitLength)).toBe(roles.getRoleForTarget(r.p));
        expect(binOfPath(r.p, bitLength)).toBe(r.bin);
      }
      expect([...roles.getRoles()][(1 << bitLength) - 1]).toBe(binName((1 << bitLength) - 1, bitLength));
    }
  });

  it("bin counts must be powers of two from 2 to 16,384", () => {
    expect(bitLengthFor(2)).toBe(1);
    expect(bitLengthFor(256)).toBe(8);
    expect(bitLengthFor(16384)).toBe(14);
    for (const bad of [0, 1, 3, 100, 32768, 2.5]) expect(() => bitLengthFor(bad)).toThrow(/power of two/);
  });

  it("dirty bins are read as runs of adjacent bins, merged across the smallest gaps past the cap", () => {
    expect(binRuns([5], 64)).toEqual([[5, 5]]);
    expect(binRuns([3, 1, 2, 7, 9, 8], 64)).toEqual([
      [1, 3],
      [7, 9],
    ]);
    expect(binRuns([0, 10, 12, 50], 2)).toEqual([
      [0, 12],
      [50, 50],
    ]);
    const many = Array.from({ length: 1000 }, (_, i) => i * 3);
    const runs = binRuns(many, 64);
    expect(runs).toHaveLength(64);
    for (const b of many) expect(runs.some(([f, t]) => f <= b && b <= t)).toBe(true);
  });
});
