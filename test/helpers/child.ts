// Real child processes of a test: stopping an external server (cfssl serve, s3rver) or a worker
// with SIGKILL and waiting for its exit; starting a script that says when it is ready.
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll } from "vitest";

export async function killAndWait(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await exited;
}

/**
 * Starts `node <script>` with `env` added and resolves once it prints "ready" on stdout; rejects
 * with its stderr if it exits first. Killed (SIGKILL) after the test file.
 */
export function startReadyProcess(script: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  afterAll(() => killAndWait(child));
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => String(d).includes("ready") && resolve(child));
    child.on("exit", (code) => reject(new Error(`${script} exited (${code}) before ready: ${err}`)));
  });
}
