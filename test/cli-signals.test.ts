// Processes as a supervisor and an operator handle them: SIGTERM to the pid they started (`npm
// start`, `npx groundskeeper start`) stops the real server and its embedded PostgreSQL; two
// `start` in one home at once: the loser says why; after a SIGKILL the orphaned PostgreSQL is
// stopped by the next command and started afresh, never reused under a dead owner.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { embeddedFiles } from "../src/db/embedded.ts";
import { isAlive } from "../src/db/embedded-owner.ts";
import { cliEnv, ROOT, runCli, spawnCli, tempHome } from "./helpers/cli.ts";

const homes: string[] = [];
afterAll(() => {
  for (const h of homes) fs.rmSync(path.dirname(h), { recursive: true, force: true });
});
function newHome(): string {
  const h = tempHome();
  homes.push(h);
  return h;
}

/** The pids of the groundskeeper process owning the home's embedded cluster and of its postmaster. */
function pidsOf(home: string): { server: number; postmaster: number } {
  const dataDir = path.join(home, "pgdata");
  return {
    server: JSON.parse(fs.readFileSync(embeddedFiles(dataDir).owner, "utf8")).pid,
    postmaster: Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]),
  };
}

function untilOutput(child: ChildProcess, re: RegExp, what: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => re.test(what()) && resolve();
    child.stdout!.on("data", check);
    child.once("close", (code) => reject(new Error(`exited (${code}) before ${re}: ${what()}`)));
  });
}

async function gone(pid: number): Promise<void> {
  await expect.poll(() => isAlive(pid), { timeout: 60_000, interval: 200 }).toBe(false);
}

describe("signals and the embedded PostgreSQL", () => {
  it("SIGTERM to `npm start` and to `npx groundskeeper start` stops the server and its database", { timeout: 300_000 }, async () => {
    const launchers: [string, string[]][] = [
      ["npm", ["start"]],
      ["npx", ["groundskeeper", "start"]],
    ];
    await Promise.all(
      launchers.map(async ([cmd, args]) => {
        const home = newHome();
        // Its own process group, so that the signal reaches only the pid we started, as from a supervisor.
        const child = spawn(cmd, args, {
          cwd: ROOT,
          env: cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0" }),
          stdio: ["ignore", "pipe", "pipe"],
          detached: true,
        });
        let out = "";
        child.stdout!.on("data", (d) => (out += d));
        child.stderr!.on("data", (d) => (out += d));
        try {
          await untilOutput(child, /Groundskeeper is running/, () => out);
        } catch (e) {
          process.kill(-child.pid!, "SIGKILL");
          throw e;
        }
        const pids = pidsOf(home);
        expect(pids.server).not.toBe(child.pid); // npm runs it as a child: the case that was broken
        child.kill("SIGTERM");
        await gone(pids.server);
        await gone(pids.postmaster);
        expect(fs.existsSync(path.join(home, "pgdata", "postmaster.pid")), out).toBe(false); // a clean shutdown
      }),
    );
  });

  it("two `start` at once: the loser says why; after a SIGKILL the next command replaces the orphaned database", {
    timeout: 240_000,
  }, async () => {
    const home = newHome();
    const env = cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0" });
    const both = [spawnCli(["start"], env), spawnCli(["start"], env)];
    const outcomes = await Promise.all(
      both.map((p) => Promise.race([p.waitFor(/Groundskeeper is running/, 180_000).then(() => "running"), p.exited])),
    );
    const winner = both[outcomes.indexOf("running")]!;
    const loser = both[outcomes.findIndex((o) => o !== "running")]!;
    expect(outcomes.sort()).toEqual([1, "running"].sort());
    const line = loser
      .stderr()
      .trimEnd()
      .split("\n")
      .filter((l) => l.startsWith("groundskeeper: "));
    expect(line, loser.stderr()).toEqual([
      expect.stringMatching(
        /^groundskeeper: another groundskeeper \(pid \d+\) is running with the embedded PostgreSQL in .*pgdata: stop it first/,
      ),
    ]);

    // SIGKILL: nothing stops the database (its own process group), the owner file stays behind.
    const orphan = pidsOf(home);
    await winner.stop("SIGKILL");
    expect(isAlive(orphan.postmaster)).toBe(true);
    const next = await runCli(["token", "list"], env);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/stopped the embedded PostgreSQL a killed groundskeeper left running/);
    expect(isAlive(orphan.postmaster)).toBe(false);
    // It ran its own server for the command and stopped it: nothing left running.
    expect(fs.existsSync(path.join(home, "pgdata", "postmaster.pid"))).toBe(false);
    expect(fs.existsSync(embeddedFiles(path.join(home, "pgdata")).owner)).toBe(false);
  });
});
