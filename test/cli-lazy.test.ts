// `--help` and `--version` must not load what only a running command needs: every command is
// registered by src/cli/main.ts, so a heavy import at the top of any module it reaches makes every
// CLI spawn slow. The spawned CLI records the modules it loads (test/helpers/record-modules.ts).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, ROOT, cliEnv } from "./helpers/cli.ts";

const RECORDER = path.join(ROOT, "test/helpers/record-modules.ts");

// Packages a command loads when it runs (S3 client, metrics, progress bar, job queue, migrations,
// GraphQL server), never to print help or the version.
const HEAVY = [
  "@aws-sdk/client-s3",
  "@opentelemetry/api",
  "prom-client",
  "cli-progress",
  "cosmiconfig",
  "graphile-worker",
  "node-pg-migrate",
  "postgraphile",
];

function loadedUrls(args: string[]): string[] {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gk-modules-")), "loaded.txt");
  const r = spawnSync(process.execPath, ["--import", RECORDER, ...args], {
    cwd: ROOT,
    env: cliEnv({ RECORD_MODULES_OUT: out }),
    encoding: "utf8",
  });
  expect(r.status, r.stderr).toBe(0);
  const urls = fs.readFileSync(out, "utf8").split("\n");
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return urls;
}

function loadedPackages(args: string[]): string[] {
  const urls = loadedUrls(args);
  return [...new Set(urls.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []))];
}

describe("CLI start-up loads only what the command uses", () => {
  it("the recorder sees a heavy package when one is loaded (so the checks below can fail)", () => {
    const loaded = loadedPackages(["--input-type=module", "-e", 'await import("prom-client"); await import("cli-progress");']);
    expect(loaded).toEqual(expect.arrayContaining(["prom-client", "@opentelemetry/api", "cli-progress"]));
  });

  it("--help loads none of the heavy packages", () => {
    const loaded = loadedPackages([CLI, "--help"]);
    expect(loaded).toContain("commander");
    expect(loaded.filter((p) => HEAVY.includes(p))).toEqual([]);
  });

  it("--version loads none of the heavy packages", () => {
    const loaded = loadedPackages([CLI, "--version"]);
    expect(loaded.filter((p) => HEAVY.includes(p))).toEqual([]);
  });

  it("a subcommand's --help loads none of the heavy packages", () => {
    for (const args of [
      ["status", "--help"],
      ["token", "list", "--help"],
      ["tuf", "--help"],
    ]) {
      const loaded = loadedPackages([CLI, ...args]);
      expect(
        loaded.filter((p) => HEAVY.includes(p)),
        args.join(" "),
      ).toEqual([]);
    }
  });

  it("a platform command loads no area manifest (src/areas.ts); --help and area commands do", () => {
    const areas = (args: string[]) => loadedUrls([CLI, ...args]).some((u) => u.endsWith("/src/areas.ts"));
    expect(areas(["token", "list", "--help"])).toBe(false);
    expect(areas(["migrate", "--help"])).toBe(false);
    expect(areas(["--help"])).toBe(true);
    expect(areas(["tuf", "--help"])).toBe(true);
  });
});
