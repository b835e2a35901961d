// Bounds how many expensive requests (GraphQL operations, token-protected routes) run at once:
// per token, so one busy client cannot take every database connection, and in total, so the
// heap in use by requests stays bounded (each operation is already bounded by its query cost).
// Beyond either limit a request is refused at once (429 / 503 with Retry-After) rather than
// queued: a queue would only move the wait (and the memory) into this process.
import v8 from "node:v8";

export interface ConcurrencyLimits {
  /** Requests of one token in flight at once. */
  perToken: number;
  /** Requests of all tokens in flight at once. */
  total: number;
  /**
   * Refuse new requests (503) while the V8 heap in use is above this fraction of its limit: under
   * `groundskeeper start` the worker shares the heap, and it must keep room to finish its jobs.
   */
  maxHeapFraction: number;
}

export const DEFAULT_CONCURRENCY_LIMITS: ConcurrencyLimits = { perToken: 4, total: 16, maxHeapFraction: 0.7 };

const heapLimit = v8.getHeapStatistics().heap_size_limit;

export type Admission = { ok: true; release(): void } | { ok: false; status: 429 | 503; message: string };

export class RequestLimiter {
  private readonly inFlight = new Map<string, number>();
  private total = 0;
  readonly limits: ConcurrencyLimits;
  constructor(limits: ConcurrencyLimits = DEFAULT_CONCURRENCY_LIMITS) {
    this.limits = limits;
  }

  /** Admits a request of `key` (a token id) or says why not; call release() exactly once when done. */
  admit(key: string): Admission {
    const mine = this.inFlight.get(key) ?? 0;
    if (mine >= this.limits.perToken) {
      return {
        ok: false,
        status: 429,
        message: `too many concurrent requests for this token (at most ${this.limits.perToken}); retry later`,
      };
    }
    const heap = process.memoryUsage().heapUsed / heapLimit;
    if (heap > this.limits.maxHeapFraction) {
      return {
        ok: false,
        status: 503,
        message: `the server is low on memory (${Math.round(heap * 100)}% of its heap in use); retry later`,
      };
    }
    if (this.total >= this.limits.total) {
      return { ok: false, status: 503, message: `the server is busy (${this.limits.total} requests in flight); retry later` };
    }
    this.inFlight.set(key, mine + 1);
    this.total++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const n = (this.inFlight.get(key) ?? 1) - 1;
        if (n <= 0) this.inFlight.delete(key);
        else this.inFlight.set(key, n);
      },
    };
  }

  get active(): number {
    return this.total;
  }
}
