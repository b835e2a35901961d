// Every CA call gets a deadline (GK_CA_TIMEOUT_MS): a CA that hangs turns into a
// CaUnavailableError the caller records and retries, never a task stuck for ever. The tasks
// claim certificates for the bin's lease plus this timeout (sql/302_certificate_claims.sql), so
// a claim always outlives the call it covers. The abandoned call itself is not cancelled (a
// request may still be signed after we gave up: the claim and the request key cover that).
import { CaUnavailableError, type CertificateAuthority } from "./types.ts";

export const DEFAULT_CA_TIMEOUT_MS = 30_000;

export interface TimedCertificateAuthority extends CertificateAuthority {
  /** The deadline of each call, in ms. */
  readonly timeoutMs: number;
  /** The adapter whose calls get the deadline. */
  readonly inner: CertificateAuthority;
}

export function withTimeout(ca: CertificateAuthority, timeoutMs: number = DEFAULT_CA_TIMEOUT_MS): TimedCertificateAuthority {
  const timed =
    <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CaUnavailableError(`${ca.kind} CA: ${name} timed out after ${timeoutMs} ms`)), timeoutMs);
      });
      return Promise.race([fn(...args), deadline]).finally(() => clearTimeout(timer));
    };
  const bound = <K extends keyof CertificateAuthority>(k: K) => {
    const f = ca[k];
    return typeof f === "function" ? timed(k, (f as (...a: unknown[]) => Promise<unknown>).bind(ca)) : undefined;
  };
  const out: Record<string, unknown> = { kind: ca.kind, timeoutMs, inner: ca };
  for (const k of ["issue", "fetch", "revoke", "revokeMany", "lookup", "refreshCrl", "crlPem", "caCertificatePem"] as const) {
    const f = bound(k);
    if (f) out[k] = f;
  }
  return out as unknown as TimedCertificateAuthority;
}

/** The deadline a task should claim for: the adapter's own, or the default. */
export function caTimeoutMs(ca: CertificateAuthority): number {
  return (ca as Partial<TimedCertificateAuthority>).timeoutMs ?? DEFAULT_CA_TIMEOUT_MS;
}
