// Which build of Groundskeeper runs: the version is package.json's; the commit is GK_BUILD_COMMIT
// (set by an image build, which has no .git) or else the checkout's `git rev-parse HEAD`.
// Labels of the gk_build_info metric and the text of `groundskeeper --version`.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let gitCommit: string | undefined;

function checkoutCommit(): string {
  if (gitCommit === undefined) {
    const r = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT, encoding: "utf8", timeout: 5_000 });
    gitCommit = r.status === 0 && /^[0-9a-f]+$/.test(r.stdout.trim()) ? r.stdout.trim() : "unknown";
  }
  return gitCommit;
}

export function buildInfo(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
  return { version, commit: env.GK_BUILD_COMMIT || checkoutCommit(), node_version: process.version };
}

/** `groundskeeper 0.1.0 (commit 1a2b3c4d5e6f, node v24.21.0)` */
export function versionLine(env: NodeJS.ProcessEnv = process.env): string {
  const b = buildInfo(env);
  return `groundskeeper ${b.version} (commit ${b.commit}, node ${b.node_version})`;
}
