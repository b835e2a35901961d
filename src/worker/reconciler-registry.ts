// gk_public.reconcilers, written from the code: every task in tasks/ defined with
// defineReconciler, with its schedule, job key and queue from the crontab (src/worker/crontab.ts:
// the definitions' schedules and the crontab file; a reconciler without a line runs only when
// activated, keyed by its name). Written at every migrate
// (a deploy step, so workers of two releases never take turns rewriting it): activate_reconciler
// knows every name and refuses others, and a task that is no longer a reconciler leaves /metrics.
import { parseCrontab } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";
import { readCrontab } from "./crontab.ts";
import { isReconciler } from "./reconciler.ts";
import { loadTaskFactories } from "./task-list.ts";

export interface ReconcilerEntry {
  name: string;
  description: string;
  schedule: string | null;
  job_key: string;
  queue_name: string;
}

export async function reconcilerEntries(crontabText?: string): Promise<ReconcilerEntry[]> {
  const crontab = crontabText ?? (await readCrontab());
  const factories = await loadTaskFactories();
  const lines = crontab.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
  const items = parseCrontab(crontab);
  const scheduled = new Map(items.map((item, i) => [item.task, { item, pattern: lines[i].trim().split(/\s+/).slice(0, 5).join(" ") }]));
  for (const task of scheduled.keys()) {
    const f = factories.get(task);
    if (!f || !isReconciler(f)) throw new Error(`crontab schedules ${task}, which is not a reconciler in tasks/ (defineReconciler)`);
  }
  const entries: ReconcilerEntry[] = [];
  for (const [id, f] of factories) {
    if (!isReconciler(f)) continue;
    if (f.reconciler.name !== id) throw new Error(`tasks/${id}.ts defines reconciler ${f.reconciler.name}: the file name must be its name`);
    const s = scheduled.get(id);
    entries.push({
      name: id,
      description: f.reconciler.description,
      schedule: s?.pattern ?? null,
      job_key: s?.item.options.jobKey ?? id,
      queue_name: s?.item.options.queueName ?? id,
    });
  }
  return entries;
}

export async function registerReconcilers(db: Queryable): Promise<void> {
  await db.query("select gk_private.reconcilers_register($1)", [JSON.stringify(await reconcilerEntries())]);
}
