// Stopping a real external server started by a test (cfssl serve, s3rver): SIGKILL, wait for exit.
import type { ChildProcess } from "node:child_process";

export async function killAndWait(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await exited;
}
