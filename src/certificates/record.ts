// Recording an outcome after a CA call is one autocommitted statement; a deadlock or
// serialization failure of that statement (never expected: sql/302_certificate_claims.sql takes
// its locks in the platform's order) is retried a few times rather than losing what the CA did.
// A final failure throws: the claim runs out and the reconciler's next attempt asks the CA.
const RETRYABLE = new Set(["40P01", "40001", "55P03"]);

export async function recordWithRetry<T>(fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= attempts || !RETRYABLE.has((e as { code?: string }).code ?? "")) throw e;
      await new Promise((r) => setTimeout(r, 20 * i));
    }
  }
}
