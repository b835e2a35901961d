// What an operator deploys: `groundskeeper --version`, the master key from a file (a compose
// secret), the Dockerfile and docker-compose.yml. Docker cannot run here: the compose file is
// checked by Debian's `docker-compose config` (it resolves and validates it as Docker would), the
// Dockerfile by reading its instructions against the rules below; neither image nor container
// is built or started (the README says so).
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { secretBoxFromEnv } from "../src/lib/secrets.ts";
import { ROOT, runCli } from "./helpers/cli.ts";
import { needs } from "./helpers/requirements.ts";

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

describe("groundskeeper --version", () => {
  it("prints package.json's version, the git commit and the Node version", async () => {
    const r = await runCli(["--version"]);
    expect(r.code, r.stderr).toBe(0);
    const git = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT, encoding: "utf8" });
    const commit = git.status === 0 ? git.stdout.trim() : "unknown";
    expect(r.stdout).toBe(`groundskeeper ${pkg.version} (commit ${commit}, node ${process.version})\n`);
    const built = await runCli(["-V"], { ...process.env, GK_BUILD_COMMIT: "abc123" });
    expect(built.stdout).toBe(`groundskeeper ${pkg.version} (commit abc123, node ${process.version})\n`);
  });
});

describe("GK_MASTER_KEY_FILE", () => {
  it("reads the key from a file (a compose secret); a bad one is one clear error", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-keyfile-"));
    try {
      const key = crypto.randomBytes(32).toString("base64");
      fs.writeFileSync(path.join(dir, "key"), `${key}\n`, { mode: 0o600 });
      const fromFile = secretBoxFromEnv({ GK_MASTER_KEY_FILE: path.join(dir, "key") }, dir);
      expect(fromFile.fingerprint()).toBe(secretBoxFromEnv({ GK_MASTER_KEY: key }, dir).fingerprint());
      expect(fs.existsSync(path.join(dir, "master.key"))).toBe(false); // no key file of its own
      fs.writeFileSync(path.join(dir, "short"), "c2hvcnQ=");
      expect(() => secretBoxFromEnv({ GK_MASTER_KEY_FILE: path.join(dir, "short") }, dir)).toThrow(/must be 32 bytes/);
      expect(() => secretBoxFromEnv({ GK_MASTER_KEY_FILE: path.join(dir, "missing") }, dir)).toThrow(
        /cannot read GK_MASTER_KEY_FILE .*ENOENT/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfile(): { op: string; args: string }[] {
  const text = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(" ") };
    });
}

describe("Dockerfile", () => {
  const ins = dockerfile();
  const stages = ins.filter((i) => i.op === "FROM");
  const last = ins.slice(ins.lastIndexOf(stages.at(-1)!));

  it("is multi-stage on Node 24, the runtime stage copies only the dependencies from the build stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const nodeImage = ins.find((i) => i.op === "ARG" && i.args.startsWith("NODE_IMAGE="))?.args.split("=")[1];
    expect(nodeImage).toMatch(/^node:24(-|$)/);
    for (const s of stages) expect(s.args).toMatch(/^\$\{NODE_IMAGE\}/);
    expect(last.filter((i) => i.op === "COPY" && i.args.startsWith("--from="))).toEqual([
      { op: "COPY", args: "--from=deps /app/node_modules ./node_modules" },
    ]);
  });

  it("installs production dependencies only, exactly from the lockfile, and nothing in the runtime stage", () => {
    const runs = ins.filter((i) => i.op === "RUN").map((i) => i.args);
    const installs = runs.filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/^npm ci\b.*--omit=dev/);
    expect(last.filter((i) => i.op === "RUN" && /\bnpm\b/.test(i.args))).toEqual([]);
  });

  it("runs as a non-root user, with everything the CLI reads at run time", () => {
    const users = last.filter((i) => i.op === "USER");
    expect(users.at(-1)?.args).toBe("node");
    const copied = last.filter((i) => i.op === "COPY").flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const needed of ["package.json", "bin", "src", "tasks", "migrations", "sql", "crontab"]) expect(copied).toContain(needed);
    expect(last.find((i) => i.op === "ENTRYPOINT")?.args).toBe('["node", "bin/groundskeeper.js"]');
  });

  it("has a .dockerignore that keeps the host's node_modules, .git and local data out of the context", () => {
    const ignored = fs.readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const p of ["node_modules", ".git", ".groundskeeper", "secrets"]) expect(ignored).toContain(p);
  });
});

describe.runIf(needs("docker-compose"))("docker-compose.yml (docker-compose config)", () => {
  it("resolves; uses the image, mounts no source, runs no npm, API on 127.0.0.1, master key from a secret", () => {
    const r = spawnSync("docker-compose", ["-f", "docker-compose.yml", "config"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, GK_API_PORT: "", POSTGRES_PASSWORD: "" },
    });
    expect(r.status, r.stderr).toBe(0);
    const config = r.stdout;
    const services = spawnSync("docker-compose", ["-f", "docker-compose.yml", "config", "--services"], { cwd: ROOT, encoding: "utf8" });
    expect(services.stdout.trim().split("\n").sort()).toEqual(["migrate", "postgres", "serve", "worker"]);
    // Each groundskeeper service: built from ./Dockerfile as one image, the key as a secret.
    expect(config.match(/image: groundskeeper:local/g)).toHaveLength(3);
    expect(config.match(/GK_MASTER_KEY_FILE: \/run\/secrets\/gk_master_key/g)).toHaveLength(3);
    expect(config.match(/- source: gk_master_key/g)).toHaveLength(3);
    expect(config).not.toMatch(/GK_MASTER_KEY:/);
    // No bind mount of the checkout, no install at deploy time.
    expect(config).not.toMatch(new RegExp(`- ${ROOT.replace(/[/.]/g, "\\$&")}:`));
    expect(config).not.toMatch(/npm/);
    // The only published port is the API, on the host's loopback.
    expect(config.match(/^\s+- .*:\d+\/tcp$/gm)).toEqual(["    - 127.0.0.1:5678:5678/tcp"]);
  });
});
