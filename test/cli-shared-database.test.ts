// A command that shares a running `start`'s embedded PostgreSQL (src/cli/context.ts: a live owner's
// cluster is shared, not started) keeps it until it is done: the start's stop waits for it
// (src/db/embedded-share.ts) instead of stopping the server under it, and a command that comes
// while the start is stopping waits for it to go and starts the cluster itself. Real processes:
// `start`, `token create` held inside its INSERT by a lock this test takes, SIGTERM to `start`
// meanwhile, then `token list` in a fresh process on the data left behind.
import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { embeddedUrl } from "../src/db/embedded.ts";
import { stopOrphanedServer } from "../src/db/embedded-owner.ts";
import { cliEnv, type LongRunning, runCli, spawnCli, tempHome } from "./helpers/cli.ts";

const homes: string[] = [];
afterAll(() => {
  for (const h of homes) fs.rmSync(path.dirname(h), { recursive: true, force: true });
});

/** Resolves once `what()` holds (polling), or rejects after `timeoutMs`. */
async function until(what: () => string | boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exitCode = (p: LongRunning) => p.child.exitCode ?? (p.child.signalCode ? -1 : null);

describe("a command sharing a running start's embedded PostgreSQL", () => {
  it("finishes and its token persists when that start is stopped meanwhile", { timeout: 300_000 }, async () => {
    const home = tempHome();
    homes.push(home);
    const env = cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0", LOG_LEVEL: "info" });
    const start = spawnCli(["start"], env);
    let holder: pg.Client | undefined;
    let watcher: pg.Client | undefined;
    let creating: LongRunning | undefined;
    let late: LongRunning | undefined;
    try {
      await start.waitFor(/Groundskeeper is running/);
      // The token's INSERT waits behind this lock (SHARE blocks writes, not the server's reads).
      holder = new pg.Client({ connectionString: embeddedUrl(path.join(home, "pgdata"))! });
      holder.on("error", () => {});
      await holder.connect();
      await holder.query("begin");
      await holder.query("lock table gk_private.api_tokens in share mode");
      // Watched from another session: inside the holder's transaction pg_stat_activity is a snapshot.
      watcher = new pg.Client({ connectionString: embeddedUrl(path.join(home, "pgdata"))! });
      watcher.on("error", () => {});
      await watcher.connect();
      creating = spawnCli(
        ["token", "create", "--role", "viewer", "--name", "made-while-start-stops"],
        cliEnv({ GROUNDSKEEPER_HOME: home }),
      );
      const waiting = async () =>
        (
          await watcher!.query(
            "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%api_token_create%'",
          )
        ).rows[0].n;
      const deadline = Date.now() + 90_000;
      while ((await waiting()) === 0) {
        if (exitCode(creating) !== null) throw new Error(`token create exited first: ${creating.stderr()}`);
        if (Date.now() > deadline) throw new Error("token create never reached its INSERT");
        await new Promise((r) => setTimeout(r, 100));
      }

      await watcher.end();
      start.child.kill("SIGTERM");
      // The start stops its parts, then waits for the sharing command (or, without that wait,
      // stops the database under it and exits).
      await until(() => /waiting for commands that share the embedded PostgreSQL/.test(start.stderr()) || exitCode(start) !== null);
      // Another command meanwhile: it does not join a stopping start, it waits and starts its own.
      late = spawnCli(["token", "create", "--role", "viewer", "--name", "made-after-start-stopped"], cliEnv({ GROUNDSKEEPER_HOME: home }));
      await holder.query("rollback").catch(() => {});

      expect(await creating.exited, creating.stderr()).toBe(0);
      expect(creating.stdout().trim()).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
      expect(await start.exited).toBe(0);
      expect(await late.exited, late.stderr()).toBe(0);

      // A fresh process on what is left in the home: both tokens are there.
      const listed = await runCli(["token", "list", "--json"], cliEnv({ GROUNDSKEEPER_HOME: home }));
      expect(listed.code, listed.stderr).toBe(0);
      const names = (JSON.parse(listed.stdout) as { name: string }[]).map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(["made-while-start-stops", "made-after-start-stopped"]));
    } finally {
      await holder?.end().catch(() => {});
      await watcher?.end().catch(() => {});
      for (const p of [creating, late, start]) if (p && exitCode(p) === null) await p.stop("SIGKILL");
      await stopOrphanedServer(path.join(home, "pgdata")); // what a killed process left running
    }
  });
});
