// Keeps a job runner going through database outages. graphile-worker stops its runner when it
// cannot record a job's outcome (the database went away mid-job), which used to end the whole
// process. The supervisor instead waits until the database answers again, releases the jobs the
// stopped runner still held (graphile-worker's public force_unlock_workers, by the runner's pool
// id: the jobs' locked_by, through gk_private.queue_workers_release), and starts a new runner. Nothing is lost: a job whose outcome was not
// recorded runs again (every task is idempotent). A failure that is not the database being
// unavailable still ends the supervisor (runner.promise semantics). Every pool registers and
// heartbeats (src/worker/heartbeat.ts), so when this process dies without stopping, other workers
// release its jobs (tasks/queue__reap_workers.ts).
import { EventEmitter } from "node:events";
import type { Runner, WorkerEvents } from "graphile-worker";
import type pg from "pg";
import type { Logger } from "pino";
import { isDatabaseUnavailable } from "../db/errors.ts";
import { errorMessage } from "../lib/errors.ts";
import { type Heartbeat, startHeartbeat } from "./heartbeat.ts";
import { startWorker, type WorkerOptions } from "./runner.ts";

export interface SupervisedRunner {
  /** Graceful stop: no new jobs; running jobs finish and are recorded; then resolves. */
  stop(): Promise<void>;
  /** Rejects when the runner fails for a reason other than an unavailable database. */
  promise: Promise<void>;
}

export interface SupervisorOptions extends WorkerOptions {
  pgPool: pg.Pool;
  log: Logger;
  /** Between attempts to reach the database again: doubles from min to max. */
  retryMs?: { min: number; max: number };
  /** How long a pool is trusted without a heartbeat (src/worker/heartbeat.ts). */
  heartbeatTtlSeconds?: number;
}

export async function superviseWorker(opts: SupervisorOptions): Promise<SupervisedRunner> {
  const { min, max } = opts.retryMs ?? { min: 500, max: 15_000 };
  let stopping = false;
  const heartbeat = startHeartbeat({ db: opts.pgPool, log: opts.log, ttlSeconds: opts.heartbeatTtlSeconds });
  let current: Supervised = await startOne(opts, heartbeat).catch(async (e) => {
    await heartbeat.stop().catch(() => {});
    throw e;
  });
  let waking: (() => void) | undefined;

  const loop = async (): Promise<void> => {
    for (;;) {
      // runner.promise resolves even when the pool stopped on a fatal error: the error is
      // learnt from the runner's events (startOne).
      const outcome = await current.runner.promise.then(
        () => current.fatal,
        (e: unknown) => e,
      );
      if (stopping) return;
      if (outcome === undefined) throw new Error("the job runner stopped on its own");
      if (!isDatabaseUnavailable(outcome)) throw outcome;
      opts.log.warn({ err: errorMessage(outcome) }, "worker: database unavailable; waiting for it to come back");
      for (let delay = min; ; delay = Math.min(delay * 2, max)) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          waking = () => (clearTimeout(t), resolve());
        });
        if (stopping) return;
        try {
          // The stopped runner's jobs, locked by its pool: released to run again at once.
          const released = await heartbeat.release(current.poolIds, "its worker lost the database");
          current = await startOne(opts, heartbeat);
          opts.log.info({ released }, "worker: database is back; runner restarted");
          break;
        } catch (e) {
          if (!isDatabaseUnavailable(e)) throw e;
          opts.log.debug({ err: errorMessage(e), retryInMs: delay }, "worker: database still unavailable");
        }
      }
    }
  };
  const promise = loop();
  promise.catch(() => {}); // observed by the caller through `promise`

  return {
    promise,
    async stop() {
      stopping = true;
      waking?.();
      await current.runner.stop().catch((e: Error) => {
        if (!/already stopped/.test(e.message)) throw e; // it had stopped itself after an error
      });
      await current.runner.promise.catch(() => {}); // that error was already handled above
      await promise.catch(() => {});
      // Not fatal: rows left behind expire, and the reaper finds nothing locked by them.
      await heartbeat.stop().catch((e) => opts.log.warn({ err: errorMessage(e) }, "worker: could not deregister"));
    },
  };
}

interface Supervised {
  runner: Runner;
  /** The pools of this runner (graphile-worker locks jobs with the pool's id). */
  poolIds: string[];
  /** Why the runner stopped itself: the error that made its pool or a worker give up. */
  fatal?: unknown;
}

async function startOne(opts: SupervisorOptions, heartbeat: Heartbeat): Promise<Supervised> {
  const events: WorkerEvents = new EventEmitter();
  const supervised: Omit<Supervised, "runner"> = { poolIds: [] };
  const registered: Promise<void>[] = [];
  events.on("pool:create", ({ workerPool }) => {
    supervised.poolIds.push(workerPool.id);
    registered.push(heartbeat.register(workerPool.id));
  });
  events.on("pool:fatalError", ({ error }) => (supervised.fatal ??= error));
  events.on("worker:fatalError", ({ error }) => (supervised.fatal ??= error));
  const runner = await startWorker({ ...opts, events });
  // Registered before the worker says it runs (pool:create fires before its first job is taken).
  const failed = (await Promise.allSettled(registered)).find((r) => r.status === "rejected");
  if (failed) {
    await runner.stop().catch(() => {});
    throw (failed as PromiseRejectedResult).reason;
  }
  return Object.assign(supervised, { runner });
}
