// The one startup sequence of every long-running command (start, worker, serve, and the agents to
// come): configuration → logger → database (DATABASE_URL or the embedded one) → master key →
// pools → services → the command's parts → signals and graceful shutdown. A command only says
// which parts it runs (src/cli/parts.ts); everything it starts is stopped in reverse order.
import type { Command } from "commander";
import type pg from "pg";
import { createPool } from "../db/pool.ts";
import type { Services } from "../services.ts";
import { type CliContext, cliContext, type Database, openDatabase } from "./context.ts";
import { Lifecycle, StartupInterrupted } from "./lifecycle.ts";
import { loadMasterKey } from "./master-key.ts";

export interface BootOptions {
  /** Open a database (DATABASE_URL or the embedded one). Default: yes; agents that only talk
   * HTTP say no. */
  database?: boolean;
  /** Apply migrations (see OpenOptions.migrate). */
  migrate?: boolean;
  /** The embedded database must be this process's own (see OpenOptions.exclusive). */
  exclusive?: boolean;
  /** Load the master key and check it against the database (secrets are sealed under it).
   * Default: yes; a process without a database has no secrets. */
  secrets?: boolean;
}

export interface AppBase extends CliContext {
  life: Lifecycle;
  /** The adapters tasks and routes act on (CA, blob store, SecretBox), built from the environment. */
  services: Services;
}

export interface App extends AppBase {
  db: Database;
  /** A pool on the database, ended at shutdown after every part started after it. */
  pool(name: string, max: number): pg.Pool;
}

/**
 * Boots, runs `main` (which starts the command's parts and registers them with `app.life`), then
 * waits for a signal or a failing part and exits with the lifecycle's code. A failure while
 * booting stops what was already started and is rethrown (one line from src/cli/main.ts).
 */
export function runApp(cmd: Command, opts: BootOptions & { database: false }, main: (app: AppBase) => Promise<void>): Promise<void>;
export function runApp(cmd: Command, opts: BootOptions, main: (app: App) => Promise<void>): Promise<void>;
export async function runApp(cmd: Command, opts: BootOptions, main: (app: App) => Promise<void>): Promise<void> {
  const ctx = cliContext(cmd);
  const life = new Lifecycle(ctx.log);
  try {
    await main(await boot(ctx, life, opts));
  } catch (e) {
    // A signal during startup is a stop like any other (exit 0), not a failure.
    if (!(e instanceof StartupInterrupted)) {
      await life.stop(1);
      throw e;
    }
  }
  process.exitCode = await life.done();
}

async function boot(ctx: CliContext, life: Lifecycle, opts: BootOptions): Promise<App> {
  const { servicesFromEnv } = await import("../services-from-config.ts");
  if (opts.database === false) {
    const services = await servicesFromEnv(ctx.log, ctx.config.home, process.env);
    return { ...ctx, life, services } as App; // `db` and `pool` are absent by the overload's type
  }
  const db = await openDatabase(ctx, {
    ...(opts.migrate === undefined ? {} : { migrate: opts.migrate }),
    ...(opts.exclusive ? { exclusive: true } : {}),
    // A long-running command holds no share of a running start's database: that start's stop
    // would wait for it (src/db/embedded-share.ts).
    hold: false,
  });
  life.add("database", () => db.close());
  const pool = (name: string, max: number) => {
    const p = createPool(db.url, max);
    life.add(`${name} pool`, () => p.end());
    return p;
  };
  const secrets = (opts.secrets ?? true) ? await loadMasterKey(ctx, db) : undefined;
  // The local CA keeps its state in the database, on a pool of its own: tasks hold a worker
  // connection (a row lock) while they call the CA.
  const services = await servicesFromEnv(ctx.log, ctx.config.home, process.env, {
    pool: pool("ca", 4),
    ...(secrets ? { secrets } : {}),
  });
  return { ...ctx, life, db, pool, services };
}
