// Starts real worker processes (helpers/worker-process.ts) against a test database and kills them:
// the fault tests' SIGKILL is a real one. Every process still running after the file is killed.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";
import { killAndWait } from "../../helpers/child.ts";

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "worker-process.ts");

/** A starter bound to one database and environment; `start(extra)` resolves once the worker is ready. */
export function workerProcesses(env: Record<string, string>) {
  const children = new Set<ChildProcess>();
  afterAll(async () => {
    await Promise.all([...children].map((c) => killAndWait(c)));
  });
  return {
    start(extra: Record<string, string> = {}): Promise<ChildProcess> {
      const child = spawn(process.execPath, [script], { env: { ...process.env, ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
      children.add(child);
      child.on("exit", () => children.delete(child));
      let err = "";
      child.stderr!.on("data", (d) => (err += d));
      if (process.env.TEST_WORKER_OUTPUT) {
        child.stdout!.on("data", (d) => fs.appendFileSync(process.env.TEST_WORKER_OUTPUT!, d));
        child.stderr!.on("data", (d) => fs.appendFileSync(process.env.TEST_WORKER_OUTPUT!, d));
      }
      return new Promise((resolve, reject) => {
        child.stdout!.on("data", (d) => String(d).includes("ready") && resolve(child));
        child.on("exit", (code) => reject(new Error(`worker exited (${code}) before ready: ${err}`)));
      });
    },
    kill: killAndWait,
  };
}
