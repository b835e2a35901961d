// Structured logs (pino) and the bridge that sends graphile-worker's logs into them.
import { Logger as WorkerLogger, type Job } from "graphile-worker";
import { pino, type Logger } from "pino";
import { errorMessage } from "./errors.ts";

export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service: "groundskeeper" } });
}

/** What one finished job says at info: task, id, attempt, duration, outcome (never its payload). */
export interface JobLine {
  task: string;
  id: string;
  attempt: number;
  maxAttempts: number;
  durationMs: number;
  outcome: "succeeded" | "failed";
  error?: string;
}

function jobLine(job: Job, meta: Record<string, unknown>): JobLine {
  const line: JobLine = {
    task: job.task_identifier,
    id: String(job.id),
    attempt: job.attempts,
    maxAttempts: job.max_attempts,
    durationMs: Math.round(Number(meta.duration ?? 0) * 100) / 100,
    outcome: meta.success ? "succeeded" : "failed",
  };
  if (meta.failure) line.error = errorMessage(meta.error);
  return line;
}

/**
 * graphile-worker's logger → pino. Its "Completed/Failed task" lines carry the whole job (with
 * the payload: kilobytes for a batch) and failures a multi-line stack in the message; here each
 * finished job is one info line (warn when it will be retried, error when it failed for good)
 * with the job's task, id, attempt, duration and outcome, the stack in `err`, and the payload only
 * at debug. Other lines drop the job object the same way.
 */
export function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const child = log.child({ worker: scope });
    const { job, ...rest } = (meta ?? {}) as Record<string, unknown> & { job?: Job };
    const firstLine = message.split("\n", 1)[0];
    if (job && (rest.success || rest.failure)) {
      const line = jobLine(job, rest);
      // A malformed payload (define-task's InvalidPayloadError) is not retried either.
      const final = job.attempts >= job.max_attempts || (rest.error as Error | undefined)?.name === "InvalidPayloadError";
      const lvl = rest.success ? "info" : final ? "error" : "warn";
      // graphile-worker's own first line ("Completed task 7 (x, 3.20ms) with success"), without the stack.
      child[lvl]({ job: line, ...(rest.failure ? { err: rest.error } : {}) }, firstLine);
      child.debug({ job: { ...line, payload: job.payload } }, "job payload");
      return;
    }
    const lvl = level === "warning" ? "warn" : level;
    const fields = job ? { ...rest, job: { task: job.task_identifier, id: String(job.id) } } : rest;
    (child[lvl as "info"] ?? child.info).call(child, fields, firstLine);
  });
}

/** graphile-worker logger that only lets warnings and errors through. */
export function quietWorkerLogger(): WorkerLogger {
  return new WorkerLogger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`graphile-worker: ${message}`);
  });
}
