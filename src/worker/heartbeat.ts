// Worker liveness, the worker's side: each job-runner pool of this process (graphile-worker's
// pool id, what graphile_worker.jobs.locked_by holds) registers in gk_private.queue_workers and
// heartbeats, each beat trusting it for `ttlSeconds` more. A pool that stops beating (the process
// was SIGKILLed, crashed, or hangs) is reaped by tasks/queue__reap_workers.ts: its jobs run again
// within about a minute instead of staying locked for graphile-worker's 4 hours. The stored logic
// is in sql/060_queue.sql; src/worker/supervisor.ts drives this module.
import os from "node:os";
import type { Logger } from "pino";
import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../lib/errors.ts";

/** How long a pool is trusted without a heartbeat (WORKER_HEARTBEAT_TTL); it beats four times per TTL. */
export const DEFAULT_HEARTBEAT_TTL_SECONDS = 60;

export interface ReleaseResult {
  released_jobs: number;
  superseded_jobs: number;
  exhausted_jobs: number;
  closed_activations: number[];
}

export interface Heartbeat {
  /** Registers a pool (its first heartbeat) and keeps it beating. */
  register(poolId: string): Promise<void>;
  /** A pool of this process is gone (its runner stopped after an outage): what it held is released. */
  release(poolIds: string[], reason: string): Promise<ReleaseResult>;
  /** Stops beating and deregisters the pools (after a clean stop, which released their jobs). */
  stop(): Promise<void>;
}

export interface HeartbeatOptions {
  db: Queryable;
  log: Logger;
  ttlSeconds?: number;
}

export function startHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const ttl = opts.ttlSeconds ?? DEFAULT_HEARTBEAT_TTL_SECONDS;
  const pools = new Set<string>();
  const beat = async (id: string): Promise<boolean> => {
    const { rows } = await opts.db.query<{ fresh: boolean }>("select gk_private.queue_worker_heartbeat($1, $2, $3, $4) as fresh", [
      id,
      os.hostname(),
      process.pid,
      ttl,
    ]);
    return rows[0].fresh;
  };
  let beating: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      beating ??= (async () => {
        for (const id of pools) {
          try {
            // A later beat that had to register again: the reaper gave this pool up (no beat for
            // a whole TTL), so other workers may have run its jobs too (every task is idempotent).
            if (await beat(id)) opts.log.warn({ pool: id, ttlSeconds: ttl }, "worker: heartbeat was late; this pool had been reaped");
          } catch (e) {
            opts.log.warn({ pool: id, err: errorMessage(e) }, "worker: heartbeat failed");
          }
        }
      })().finally(() => (beating = undefined));
    },
    Math.max(250, (ttl * 1000) / 4),
  );
  timer.unref();
  return {
    async register(id) {
      pools.add(id);
      await beat(id);
    },
    async release(ids, reason) {
      for (const id of ids) pools.delete(id);
      const { rows } = await opts.db.query<{ r: ReleaseResult }>("select gk_private.queue_workers_release($1::text[], $2) as r", [
        ids,
        reason,
      ]);
      return rows[0].r;
    },
    async stop() {
      clearInterval(timer);
      await beating;
      const ids = [...pools];
      pools.clear();
      if (ids.length) await opts.db.query("select gk_private.queue_workers_deregister($1::text[])", [ids]);
    },
  };
}
