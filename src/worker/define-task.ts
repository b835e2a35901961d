// Every task: parse the payload with zod, act, record. A malformed payload fails that job
// permanently with a clear error (retrying cannot fix it) and never crashes the runner.
import type { JobHelpers, Task } from "graphile-worker";
import type { z } from "zod";
import type { Services } from "../services.ts";
import { failJobPermanently } from "./queue.ts";

export interface TaskContext {
  services: Services;
  helpers: JobHelpers;
}

export interface TaskDefinition<S extends z.ZodType> {
  payload: S;
  run(payload: z.infer<S>, ctx: TaskContext): Promise<void | unknown[]>;
}

/** A task module's default export; bound to the process's services when the task list is built. */
export type TaskFactory = (services: Services) => Task;

export class InvalidPayloadError extends Error {
  override name = "InvalidPayloadError";
}

export function defineTask<S extends z.ZodType>(def: TaskDefinition<S>): TaskFactory {
  return (services) => async (raw, helpers) => {
    const parsed = def.payload.safeParse(raw ?? {});
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
      // No more attempts for this job: it stays visible as failed, with this error.
      await failJobPermanently(helpers);
      throw new InvalidPayloadError(`invalid payload for ${helpers.job.task_identifier}: ${detail}`);
    }
    return def.run(parsed.data, { services, helpers });
  };
}
