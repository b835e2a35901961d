// The task list: every file in tasks/ whose default export is a defineTask() factory.
// The file name (without .ts) is the task identifier, e.g. tasks/certificates__revoke.ts.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { TaskList } from "graphile-worker";
import type { Services } from "../services.ts";
import type { TaskFactory } from "./define-task.ts";

export const TASKS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../tasks");

let factories: Map<string, TaskFactory> | undefined;

/** Every task identifier (file names in tasks/), without loading the modules. */
export function taskIdentifiers(): string[] {
  return fs
    .readdirSync(TASKS_DIR)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

export async function loadTaskFactories(): Promise<Map<string, TaskFactory>> {
  if (factories) return factories;
  const found = new Map<string, TaskFactory>();
  for (const id of taskIdentifiers()) {
    const file = `${id}.ts`;
    const mod = await import(pathToFileURL(path.join(TASKS_DIR, file)).href);
    if (typeof mod.default !== "function") throw new Error(`tasks/${file} has no default export from defineTask()`);
    found.set(id, mod.default as TaskFactory);
  }
  factories = found;
  return found;
}

export async function buildTaskList(services: Services): Promise<TaskList> {
  const list: TaskList = {};
  for (const [id, factory] of await loadTaskFactories()) list[id] = factory(services);
  return list;
}
