// Which process owns an embedded cluster: `<data>.owner` holds the pid and start time of the
// groundskeeper process that starts and stops its server. Other commands share the cluster while
// that process lives. Once it is gone (SIGKILL, a crash) the server it left is an orphan: the next
// command stops it and starts it again as its own, so it is never reused under a dead owner.
import fs from "node:fs";
import { embeddedFiles } from "./embedded.ts";

interface Owner {
  pid: number;
  /** /proc start time of the pid (clock ticks since boot), so a reused pid is not taken for the owner. */
  started: string | null;
  /** The owner is stopping the server: commands wait for it to go instead of sharing (src/db/embedded-share.ts). */
  stopping?: boolean;
}

/** Makes this process the owner, unless a live process already is. Atomic (O_EXCL). */
export function claimOwnership(dataDir: string): boolean {
  const file = embeddedFiles(dataDir).owner;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const me: Owner = { pid: process.pid, started: startTime(process.pid) };
      fs.writeFileSync(file, JSON.stringify(me), { flag: "wx", mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (liveOwner(dataDir) !== null) return false;
      fs.rmSync(file, { force: true }); // its owner is gone
    }
  }
  return false;
}

/** Marks this process's ownership as stopping (atomically: write and rename). */
export function markStopping(dataDir: string): void {
  const file = embeddedFiles(dataDir).owner;
  const owner = readOwner(file);
  if (owner?.pid !== process.pid) return;
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...owner, stopping: true }), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Whether the live owner of the cluster is stopping it. */
export function ownerStopping(dataDir: string): boolean {
  return liveOwner(dataDir) !== null && readOwner(embeddedFiles(dataDir).owner)?.stopping === true;
}

export function releaseOwnership(dataDir: string): void {
  const file = embeddedFiles(dataDir).owner;
  if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
}

/** The pid of the live process that owns the cluster, or null. */
export function liveOwner(dataDir: string): number | null {
  const owner = readOwner(embeddedFiles(dataDir).owner);
  if (!owner || !isAlive(owner.pid)) return null;
  if (owner.started !== null && startTime(owner.pid) !== owner.started) return null;
  return owner.pid;
}

/**
 * Stops the server a dead owner left running (the postmaster of `postmaster.pid`): a fast
 * shutdown (SIGINT), then an immediate one (SIGQUIT) if it does not go within 30 s.
 * Returns the pid it stopped, or null when no server was running.
 */
export async function stopOrphanedServer(dataDir: string): Promise<number | null> {
  const pidFile = `${dataDir}/postmaster.pid`;
  if (!fs.existsSync(pidFile)) return null;
  const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!pid || !isAlive(pid) || !isPostgres(pid)) return null; // a stale pid file: postgres handles it
  for (const [signal, waitMs] of [
    ["SIGINT", 30_000],
    ["SIGQUIT", 10_000],
  ] as const) {
    process.kill(pid, signal);
    const deadline = Date.now() + waitMs;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (!isAlive(pid)) return pid;
  }
  throw new Error(`the orphaned embedded PostgreSQL (pid ${pid}, data in ${dataDir}) does not stop`);
}

function readOwner(file: string): Owner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, "utf8")) as Owner;
    return Number.isInteger(o.pid) && o.pid > 0 ? o : null;
  } catch {
    return null;
  }
}

/** Signal 0 tells whether the pid exists (EPERM: it does, another user's); a zombie is dead. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return procStat(pid)?.[0] !== "Z";
}

/** Fields of /proc/<pid>/stat after the command name (state first); null without /proc. */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

export function startTime(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** Is the pid of the pid file still a postgres (not a reused pid)? Without /proc (macOS), trusted. */
function isPostgres(pid: number): boolean {
  try {
    return /(^|\/)postgres$/.test(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "");
  } catch {
    return true;
  }
}
