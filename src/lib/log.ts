// Structured logs (pino) and the bridge that sends graphile-worker's logs into them.
import { Logger as WorkerLogger } from "graphile-worker";
import { pino, type Logger } from "pino";

export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service: "groundskeeper" } });
}

export function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const child = log.child({ worker: scope });
    const lvl = level === "warning" ? "warn" : level;
    (child[lvl as "info"] ?? child.info).call(child, meta ?? {}, message);
  });
}

/** graphile-worker logger that only lets warnings and errors through. */
export function quietWorkerLogger(): WorkerLogger {
  return new WorkerLogger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`graphile-worker: ${message}`);
  });
}
