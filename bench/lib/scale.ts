// BENCH_SCALE (default 1): every benchmark's sizes are multiplied by it, so that
// `BENCH_SCALE=0.02 npm run bench` checks in a few minutes that each one runs from a clean clone.
export const SCALE = Number(process.env.BENCH_SCALE ?? 1);

/** `n` at the current scale, at least `min`. */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}
