// Two processes on one database with different master keys (DATABASE_URL set, no GK_MASTER_KEY:
// each home gets its own key file): the first records its key's fingerprint, the second refuses
// to start with one line and exit code 1 instead of failing every job that opens a secret.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, spawnCli, tempHome } from "./helpers/cli.ts";
import { createTestDb } from "./helpers/db.ts";

const db = await createTestDb();
const homes = [tempHome(), tempHome()];
afterAll(() => {
  for (const h of homes) fs.rmSync(path.dirname(h), { recursive: true, force: true });
});
const env = (home: string, extra: Record<string, string> = {}) =>
  cliEnv({ DATABASE_URL: db.url, GROUNDSKEEPER_HOME: home, PORT: "0", LOG_LEVEL: "info", ...extra });

describe("master key fingerprint", () => {
  it("a process with another key than the database's refuses to start; the same key starts", { timeout: 120_000 }, async () => {
    const first = spawnCli(["worker", "--no-cron"], env(homes[0]!));
    try {
      await expect.poll(() => first.stderr(), { timeout: 60_000 }).toMatch(/"worker running"/);
      const { rows } = await db.query("select fingerprint from gk_private.master_key");
      expect(rows).toHaveLength(1);

      const second = await runCli(["worker", "--no-cron"], env(homes[1]!));
      expect(second.code, second.stderr).toBe(1);
      const lines = second.stderr
        .trimEnd()
        .split("\n")
        .filter((l) => l.startsWith("groundskeeper: "));
      expect(lines, second.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^groundskeeper: the master key of this process \(the key file in .*\) is not the one this database's secrets are sealed under/,
      );
      expect(second.stderr).not.toMatch(/"worker running"/);

      const wrongEnv = await runCli(["serve"], env(homes[1]!, { GK_MASTER_KEY: crypto.randomBytes(32).toString("base64") }));
      expect(wrongEnv.code).toBe(1);
      expect(wrongEnv.stderr).toMatch(/groundskeeper: the master key of this process \(GK_MASTER_KEY, fingerprint/);

      // The first process's key, given to another process: it starts.
      const key = fs.readFileSync(path.join(homes[0]!, "master.key"), "utf8").trim();
      const same = spawnCli(["worker", "--no-cron"], env(homes[1]!, { GK_MASTER_KEY: key }));
      await expect.poll(() => same.stderr(), { timeout: 60_000 }).toMatch(/"worker running"/);
      expect(await same.stop("SIGTERM"), same.stderr()).toBe(0);
      expect((await db.query("select fingerprint from gk_private.master_key")).rows).toEqual(rows);
    } finally {
      expect(await first.stop("SIGTERM"), first.stderr()).toBe(0);
    }
  });
});
