// The crontab (graphile-worker format, UTC): one line per reconciler whose definition has a
// `schedule` (tasks/<key>__<verb>.ts, defineReconciler), so adding a periodic task touches only
// its own file, plus any lines of the `crontab` file at the repository root. Every line has `id`,
// `jobKey` (preserve_run_at: a run that overlaps the next tick does not pile up) and a queue equal
// to the task identifier (two runs of one reconciler never overlap); activate_reconciler ("run it
// now") enqueues with the same key and queue.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isReconciler } from "./reconciler.ts";
import { loadTaskFactories } from "./task-list.ts";

export const CRONTAB_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../crontab");

/** The crontab line of a reconciler scheduled by its definition. */
export function crontabLine(name: string, schedule: string): string {
  return `${schedule} ${name} ?id=${name}&jobKey=${name}&jobKeyMode=preserve_run_at&queue=${name}`;
}

export async function readCrontab(): Promise<string> {
  const file = fs.existsSync(CRONTAB_FILE) ? fs.readFileSync(CRONTAB_FILE, "utf8") : "";
  const lines: string[] = [];
  for (const f of (await loadTaskFactories()).values()) {
    if (isReconciler(f) && f.reconciler.schedule) lines.push(crontabLine(f.reconciler.name, f.reconciler.schedule));
  }
  return `${file.trimEnd()}\n${lines.join("\n")}\n`;
}
