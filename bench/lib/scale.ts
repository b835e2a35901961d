// BENCH_SCALE (default 1): every benchmark's sizes are multiplied by it, so that
// `BENCH_SCALE=0.02 npm run bench` checks in a few minutes that each one runs from a clean clone.
export const SCALE = Number(process.env.BENCH_SCALE ?? 1);

/** `n` at the current scale, at least `min`. */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}

/** A power of two near `n` at the current scale (TUF bin counts), at least `min`. */
export function scaledPowerOfTwo(n: number, min = 16): number {
  return Math.max(min, 2 ** Math.round(Math.log2(Math.max(1, n * SCALE))));
}
