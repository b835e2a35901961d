// Tests that need a tool from outside npm (test/helpers/requirements.ts): skipped, said once,
// where the tool is missing; a failed run where GK_TEST_REQUIRE makes the tool mandatory.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { ROOT } from "./helpers/cli.ts";
import { checkTools, requiredTools } from "./helpers/requirements.ts";

/** An empty PATH: none of the Debian tools can be found (as on a machine with only Node and npm). */
const bare = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bare-path-"));

function vitest(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", file], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

describe("tests that need tools from outside npm", () => {
  it("are skipped where the tool is missing, with one note naming the Debian package", { timeout: 120_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bare, TEST_DATABASE_URL: inject("pgServerUrl") };
    delete env.GK_TEST_REQUIRE;
    const r = await vitest("test/adapters/cfssl-ca.test.ts", env);
    expect(r.code, r.out).toBe(0);
    expect(r.out.match(/note: skipping the tests that need .*cfssl/g), r.out).toHaveLength(1);
    expect(r.out).toMatch(/golang-cfssl/);
    expect(r.out).toMatch(/0 passed, 0 failed, \d+ skipped/);
  });

  it("fail the run where GK_TEST_REQUIRE makes the missing tool mandatory", () => {
    expect(() => checkTools({ PATH: bare, GK_TEST_REQUIRE: "cfssl" })).toThrow(
      /GK_TEST_REQUIRE needs cfssl, not installed here: apt-get install golang-cfssl/,
    );
    expect(() => requiredTools({ GK_TEST_REQUIRE: "cfsll" })).toThrow(/unknown tools: cfsll/);
    // Where it is installed, nothing is said and nothing throws.
    if (inject("tools").cfssl) expect(checkTools({ ...process.env, GK_TEST_REQUIRE: "cfssl" }).tools.cfssl).toBe(true);
  });
});
