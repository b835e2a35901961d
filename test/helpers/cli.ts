// Run the real CLI (`node src/cli/main.ts …`) with this project's Node, as a user would.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = path.join(ROOT, "src/cli/main.ts");

/** The environment of a fresh shell: no database configured, a private home, quiet logs. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", ...extra };
  delete env.TEST_DATABASE_URL;
  if (!("DATABASE_URL" in extra)) delete env.DATABASE_URL;
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
}

/** A temporary GROUNDSKEEPER_HOME the embedded PostgreSQL (run as 'postgres' under root) can enter. */
export function tempHome(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-home-"));
  fs.chmodSync(dir, 0o755);
  return path.join(dir, "home");
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = cliEnv()): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export interface LongRunning {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the match once stdout matches `re` (rejects if the process exits first). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGINT to the process group, twice at once (needs `detached`); resolves with the exit code. */
  ctrlC(): Promise<number | null>;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `detached`: the CLI leads its own process group, as in a terminal (see ctrlC). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv, opts: { detached?: boolean } = {}): LongRunning {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: opts.detached });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor(re, timeoutMs = 90_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${re}; stdout: ${out}; stderr: ${err}`)), timeoutMs);
        const check = () => {
          const m = out.match(re);
          if (m) done(null, m);
        };
        const onExit = (code: number | null) => done(new Error(`exited (${code}) before printing ${re}; stdout: ${out}; stderr: ${err}`));
        const done = (e: Error | null, m?: RegExpMatchArray) => {
          clearTimeout(timer);
          child.stdout!.off("data", check);
          child.off("close", onExit);
          if (e) reject(e);
          else resolve(m!);
        };
        child.stdout!.on("data", check);
        child.on("close", onExit);
        check();
      });
    },
    async ctrlC() {
      // What `npm start` + Ctrl-C does: SIGINT to the whole foreground group, and npm forwards
      // another SIGINT to its child right away.
      process.kill(-child.pid!, "SIGINT");
      // (a moment later: two identical pending signals would be merged into one)
      await new Promise((r) => setTimeout(r, 100));
      if (child.exitCode === null) child.kill("SIGINT");
      return exited;
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
