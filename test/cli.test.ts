// The CLI as a user runs it: real processes, one-line errors and exit codes.
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { createEmptyDb, createTestDb } from "./helpers/db.ts";
import { cliEnv, runCli } from "./helpers/cli.ts";

const db = await createTestDb();
const withDb = cliEnv({ DATABASE_URL: db.url });

function expectOneLineError(r: { code: number | null; stdout: string; stderr: string }, re: RegExp) {
  expect(r.code).toBe(1);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^groundskeeper: /);
  expect(lines[0]).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
}

describe("groundskeeper CLI", () => {
  it("has --help for every command", async () => {
    const top = await runCli(["--help"]);
    expect(top.code).toBe(0);
    for (const c of ["start", "migrate", "worker", "serve", "token", "status"]) expect(top.stdout).toContain(c);
    const sub = await runCli(["token", "create", "--help"]);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toMatch(/--role <role>[\s\S]*--name <name>/);
  });

  it("gives one-line errors for bad input", async () => {
    expectOneLineError(await runCli(["status"], cliEnv({ DATABASE_URL: "mysql://nope" })), /DATABASE_URL: must be a postgres:\/\/ URL/);
    expectOneLineError(
      await runCli(["status"], cliEnv({ DATABASE_URL: "postgres://u@127.0.0.1:notaport/x" })),
      /DATABASE_URL is not a valid URL/,
    );
    expectOneLineError(
      await runCli(["status"], cliEnv({ DATABASE_URL: "postgres://u@127.0.0.1:1/x" })),
      /cannot connect to PostgreSQL at 127\.0\.0\.1:1: connection refused/,
    );
    const noDb = new URL(db.url);
    noDb.pathname = "/gk_no_such_database";
    expectOneLineError(
      await runCli(["status"], cliEnv({ DATABASE_URL: noDb.toString() })),
      /database "gk_no_such_database" does not exist/,
    );
    expectOneLineError(
      await runCli(["token", "create", "--role", "root", "--name", "x"], withDb),
      /unknown role 'root' \(expected one of: admin, viewer\)/,
    );
    expectOneLineError(await runCli(["token", "create", "--name", "x"], withDb), /required option '-r, --role <role>' not specified/);
    expectOneLineError(await runCli(["serve", "--port", "99999"], withDb), /expected a port number/);
    expectOneLineError(await runCli(["frobnicate"]), /unknown command 'frobnicate'/);
    expectOneLineError(await runCli(["status"], cliEnv({ DATABASE_URL: db.url, PORT: "http" })), /PORT/);
  });

  it("refuses a port that is taken, with one line", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      expectOneLineError(
        await runCli(["serve", "--port", String(port)], withDb),
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`),
      );
    } finally {
      blocker.close();
    }
  });

  it("tells you to migrate when the database is empty", async () => {
    const empty = await createEmptyDb();
    afterAll(() => empty.drop());
    expectOneLineError(await runCli(["status"], cliEnv({ DATABASE_URL: empty.url })), /not migrated.*groundskeeper migrate/);
    const migrated = await runCli(["migrate"], cliEnv({ DATABASE_URL: empty.url }));
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/migrations applied: 0001_foundation/);
    expect(migrated.stdout).toMatch(/stored logic applied: 000_enqueue\.sql/);
    const again = await runCli(["migrate"], cliEnv({ DATABASE_URL: empty.url }));
    expect(again.stdout).toMatch(/migrations: up to date\nstored logic: up to date/);
  });

  it("creates, lists and revokes tokens; the value is printed once and stored hashed", async () => {
    const created = await runCli(["token", "create", "--role", "viewer", "--name", "grafana"], withDb);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.query(`select role, encode(token_sha256, 'hex') as h from gk_private.api_tokens where name = 'grafana'`);
    expect(rows).toEqual([{ role: "gk_viewer", h: (await import("node:crypto")).createHash("sha256").update(token).digest("hex") }]);

    const listed = await runCli(["token", "list"], withDb);
    expect(listed.stdout).toMatch(/grafana\s+viewer/);
    expect(listed.stdout).not.toContain(token);

    const revoked = await runCli(["token", "revoke", "grafana"], withDb);
    expect(revoked.stdout).toMatch(/revoked 1 token/);
    expectOneLineError(await runCli(["token", "revoke", "grafana"], withDb), /no active token with id or name 'grafana'/);
  });

  it("status shows queue depth by task, failed jobs and the latest activation per task (text and --json)", async () => {
    await db.query(`select gk_private.enqueue_many('system__noop', array[jsonb_build_object('n', 1), jsonb_build_object('n', 2)])`);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": 3}', run_at := now() + interval '1 hour')`);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": 4}', max_attempts := 1)`);
    await db.query(`update graphile_worker._private_jobs set attempts = 1, last_error = 'CA unreachable' where payload->>'n' = '4'`);
    await db.query(`select gk_private.activation_finish(gk_private.activation_start('retention__sweep'), '{"deleted": 12}')`);
    await db.query(`select gk_private.activation_finish(gk_private.activation_start('retention__sweep'), '{}', 'disk full')`);

    const json = await runCli(["status", "--json"], withDb);
    expect(json.code, json.stderr).toBe(0);
    const data = JSON.parse(json.stdout);
    expect(data.jobs.tasks).toEqual([{ task: "system__noop", ready: 2, scheduled: 1, running: 0, stalled: 0, retrying: 0, failed: 1 }]);
    expect(data.jobs.failed).toMatchObject([{ task: "system__noop", attempts: 1, last_error: "CA unreachable" }]);
    expect(data.activations).toMatchObject([{ task: "retention__sweep", status: "failed", error: "disk full" }]);

    const text = await runCli(["status"], withDb);
    expect(text.stdout).toMatch(/system__noop\s+2\s+1\s+0\s+0\s+0\s+1/);
    expect(text.stdout).toMatch(/CA unreachable/);
    expect(text.stdout).toMatch(/retention__sweep\s+failed/);
  });
});
