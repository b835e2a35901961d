// The robot API's export setting is checked when the process starts: a malformed
// GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS stops `serve` with one line, instead of every robot's
// fetch failing with a 500 later (src/config.ts, src/exports/robot-routes.ts).
import { describe, expect, it } from "vitest";
import { cliEnv, runCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";

const db = await createTestDb();

describe("GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS", () => {
  it.each(["soon", "5", "7200", "30.5"])("%s: serve refuses to start with one line", async (ttl) => {
    const r = await runCli(
      ["serve", "--port", "0", "--robot-port", "0"],
      cliEnv({ DATABASE_URL: db.url, GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS: ttl }),
    );
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^groundskeeper: invalid configuration: GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS: /);
    expect(r.stdout).not.toMatch(/Robot API:/);
  });
});
