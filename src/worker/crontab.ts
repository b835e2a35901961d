// The crontab (graphile-worker format, UTC) at the repository root: every line schedules a
// reconciler, with `id` and `jobKey` equal to the task identifier and a queue of its own.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const CRONTAB_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../crontab");

export function readCrontab(): string {
  return fs.existsSync(CRONTAB_FILE) ? fs.readFileSync(CRONTAB_FILE, "utf8") : "";
}
