// Graceful shutdown for long-running commands: the first SIGINT/SIGTERM stops the parts in
// reverse order of start (server, worker, database); a later second signal exits at once.
// Under npm (`npm start`, `npx groundskeeper …`) a supervisor signals npm, and npm signals the
// shell it runs us in, which dies without passing the signal on: the parent going away is then
// a stop too (src/cli/parent-watch.ts).
import type pg from "pg";
import { createPool } from "../db/pool.ts";
import type { Logger } from "pino";
import { watchParent } from "./parent-watch.ts";

/** Thrown by Lifecycle.add when a signal arrived while the command was still starting: the
 * startup is abandoned and the process exits as for any stop (src/cli/boot.ts runApp). */
export class StartupInterrupted extends Error {
  override name = "StartupInterrupted";
}

type Stage = { name: string; stop: () => Promise<unknown> };

export class Lifecycle {
  readonly #log: Logger;
  readonly #stages: Stage[] = [];
  #stopping: Promise<number> | undefined;
  #resolveDone!: (code: number) => void;
  readonly #done = new Promise<number>((resolve) => (this.#resolveDone = resolve));
  #firstSignalAt = 0;
  readonly #onSignal = (signal: NodeJS.Signals) => {
    if (this.#stopping) {
      // Under `npm start`, Ctrl-C reaches us twice at once (from the terminal and forwarded by
      // npm): only a signal sent a while after the first one means "force".
      if (Date.now() - this.#firstSignalAt < 2_000) return;
      this.#log.warn({ signal }, "second signal: exiting without waiting for a clean shutdown");
      process.exit(130);
    }
    this.#firstSignalAt = Date.now();
    this.#log.info({ signal }, "shutting down (send the signal again to force)");
    void this.stop(0);
  };

  constructor(log: Logger) {
    this.#log = log;
    process.on("SIGINT", this.#onSignal);
    process.on("SIGTERM", this.#onSignal);
    watchParent(() => {
      if (this.#stopping) return;
      this.#log.info({ parent: "exited" }, "shutting down: npm, which started this process, has stopped");
      void this.stop(0);
    });
  }

  /** Registers a part to stop at shutdown; parts stop in reverse order of registration. */
  add(name: string, stop: () => Promise<unknown>): void {
    if (this.#stopping) {
      // A signal arrived while this part was starting: stop it too, and abandon the startup.
      void this.#stopping.then(() => stop()).catch(() => {});
      throw new StartupInterrupted(`interrupted while starting (${name})`);
    }
    this.#stages.push({ name, stop });
  }

  /** A part died on its own: shut the rest down and exit non-zero. */
  fail(name: string, error: unknown): void {
    this.#log.error({ err: error }, `${name} failed; shutting down`);
    void this.stop(1);
  }

  stop(code: number): Promise<number> {
    this.#stopping ??= (async () => {
      let exit = code;
      for (const stage of [...this.#stages].reverse()) {
        try {
          await stage.stop();
          this.#log.debug(`${stage.name} stopped`);
        } catch (e) {
          exit = 1;
          this.#log.error({ err: e }, `${stage.name} did not stop cleanly`);
        }
      }
      // The signal handlers stay: a late duplicate Ctrl-C must not kill the exiting process.
      this.#log.info({ exitCode: exit }, "stopped");
      this.#resolveDone(exit);
      return exit;
    })();
    return this.#stopping;
  }

  /** Resolves with the exit code once everything has stopped. */
  done(): Promise<number> {
    return this.#done;
  }
}

/** The worker's pool: ours (with error handlers), so that we can end it before the database stops. */
export function workerPool(url: string, concurrency: number): pg.Pool {
  return createPool(url, Math.max(10, concurrency + 2));
}
