// Commands that share a running owner's embedded cluster (`token create` while `start` runs; see
// src/db/embedded-owner.ts) hold a share for as long as they use it: a file
// `<data>.shares/<pid>-<random>` (pid and /proc start time, like the owner file). The owner's
// stop first marks the owner file `stopping`, then waits (bounded) until no live process holds a
// share, and only then stops the server, so a sharer's work commits instead of being cut off by
// the fast shutdown. A command that finds the owner stopping takes no share: it waits until the
// owner is gone and starts the cluster itself. Taking a share writes the file and then reads
// the mark; stopping writes the mark and then reads the files, so one of the two always sees
// the other.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { isAlive, ownerStopping, startTime } from "./embedded-owner.ts";

function sharesDir(dataDir: string): string {
  return `${dataDir}.shares`;
}

interface Share {
  pid: number;
  started: string | null;
}

/** Takes a share of the cluster; null when its owner is stopping (take none then). */
export function takeShare(dataDir: string): (() => void) | null {
  const dir = sharesDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${process.pid}-${crypto.randomBytes(4).toString("hex")}`);
  const me: Share = { pid: process.pid, started: startTime(process.pid) };
  fs.writeFileSync(file, JSON.stringify(me), { flag: "wx", mode: 0o600 });
  const release = () => fs.rmSync(file, { force: true });
  if (ownerStopping(dataDir)) {
    release();
    return null;
  }
  return release;
}

/** The pids of live processes holding a share; files of dead ones are removed. */
export function liveShares(dataDir: string): number[] {
  const dir = sharesDir(dataDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const live: number[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    let share: Share | null = null;
    try {
      share = JSON.parse(fs.readFileSync(file, "utf8")) as Share;
    } catch {
      // being written (wx then content) or removed: look again next time
      continue;
    }
    const alive = Number.isInteger(share.pid) && isAlive(share.pid) && (share.started === null || startTime(share.pid) === share.started);
    if (alive) live.push(share.pid);
    else fs.rmSync(file, { force: true });
  }
  return live;
}

/**
 * Waits until no live process holds a share, at most `timeoutMs`; `onWait` is told the pids once
 * when there are some. Returns the pids still holding one at the deadline (empty: drained).
 */
export async function drainShares(dataDir: string, timeoutMs: number, onWait: (pids: number[]) => void): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    const live = liveShares(dataDir);
    if (!live.length || Date.now() > deadline) return live;
    if (!told) onWait(live);
    told = true;
    await new Promise((r) => setTimeout(r, 100));
  }
}
