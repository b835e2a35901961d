// Blob keys are `/`-separated relative paths; the same rules hold for every store, so a key that
// works on S3 works on the filesystem and cannot escape the store's root there.
export class InvalidBlobKeyError extends Error {
  override name = "InvalidBlobKeyError";
}

export function assertValidKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || Buffer.byteLength(key) > 1024)
    throw new InvalidBlobKeyError(`blob key must be 1–1024 bytes: ${JSON.stringify(key)}`);
  if (key.startsWith("/") || key.endsWith("/") || key.includes("//") || key.includes("\0") || key.includes("\\"))
    throw new InvalidBlobKeyError(`blob key must be a relative path without empty segments: ${JSON.stringify(key)}`);
  for (const seg of key.split("/")) {
    if (seg === "." || seg === "..")
      throw new InvalidBlobKeyError(`blob key must not contain '.' or '..' segments: ${JSON.stringify(key)}`);
  }
}

/** A prefix may be empty (everything) or any string a key could start with. */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== "string" || prefix.startsWith("/") || prefix.includes("\0") || prefix.includes("\\"))
    throw new InvalidBlobKeyError(`invalid blob prefix: ${JSON.stringify(prefix)}`);
}

export function assertValidLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`list limit must be an integer in 1..1000, got ${limit}`);
}

/** S3 orders keys by their UTF-8 bytes; JavaScript's < compares UTF-16 units. Use bytes everywhere. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
