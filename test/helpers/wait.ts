// Polls until fn returns something truthy (state reached), failing after a generous bound.
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, what = "condition", timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
