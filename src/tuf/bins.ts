// TAP 15 succinct hashed bins, exactly as clients (tuf-js SuccinctRoles) compute them.
import crypto from "node:crypto";
import { UserError } from "../lib/errors.ts";

export const BIN_PREFIX = "bins";

/** 2..16,384 bins, a power of two → bit_length 1..14. */
export function bitLengthFor(bins: number): number {
  if (!Number.isInteger(bins) || bins < 2 || bins > 16384 || (bins & (bins - 1)) !== 0) {
    throw new UserError(`bins must be a power of two from 2 to 16384 (got ${bins})`);
  }
  return Math.log2(bins);
}

export function binName(bin: number, bitLength: number): string {
  const suffixLen = ((1 << bitLength) - 1).toString(16).length;
  return `${BIN_PREFIX}-${bin.toString(16).padStart(suffixLen, "0")}`;
}

export function binOfPath(targetPath: string, bitLength: number): number {
  const h = crypto.createHash("sha256").update(targetPath, "utf8").digest();
  return h.readUInt32BE(0) >>> (32 - bitLength);
}
