// The real CLI end to end: `groundskeeper worker` issues and revokes at its local CA (state in the
// database) and purges the filesystem blob store; `status` shows the bin; `status --watch` follows
// it to zero. The CRL is then read with openssl.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { cliEnv, runCli, spawnCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { crlSerials } from "./helpers/ca-fixtures.ts";
import { ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";

const db = await createTestDb();
const key = crypto.randomBytes(32);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-certs-cli-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const env = cliEnv({
  DATABASE_URL: db.url,
  GK_MASTER_KEY: key.toString("base64"),
  GK_BLOBS_DIR: path.join(dir, "blobs"),
  GK_CA_CRL_DEBOUNCE_MS: "0",
  LOG_LEVEL: "info",
});

async function until(fn: () => Promise<boolean>, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("groundskeeper worker + status", () => {
  it("issues at the local CA, and after a team delete drains the bin (status --watch follows it) with the CRL listing exactly its serials", {
    timeout: 180_000,
  }, async () => {
    const team = (await insertTeam(db, { name: "cli" })).id;
    const keep = (await insertTeam(db, { name: "cli-keep" })).id;
    const robots = ids(await insertRobots(db, { team, count: 30 }));
    const [kept] = ids(await insertRobots(db, { team: keep, count: 1 }));
    await db.query("select gk_public.request_certificate(r) from unnest($1::uuid[]) r", [[...robots, kept]]);
    await db.query("select gk_public.create_provisioning_credential($1, 'line')", [team]);
    const blobs = new FsBlobStore(path.join(dir, "blobs"));
    for (let i = 0; i < 120; i++) await blobs.put(`teams/${team}/o/${i}`, "x");
    await blobs.put(`teams/${keep}/o/1`, "x");

    let worker = spawnCli(["worker", "--no-cron"], env);
    await until(async () => worker.stderr().includes("worker running")); // pino logs go to stderr
    await until(
      async () => (await db.query("select count(*)::int as n from gk_public.certificates where status = 'issued'")).rows[0].n === 33,
    ).catch((e) => {
      throw new Error(`${e.message}: ${worker.stderr()} ${worker.stdout().slice(-2000)}`);
    });
    expect(await worker.stop("SIGTERM")).toBe(0);

    await db.query("delete from gk_public.teams where id = $1", [team]);
    const status = await runCli(["status"], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/== Bin \(pending deletions\) ==/);
    expect(status.stdout).toMatch(/blob_prefix\s+1\s+0/);
    expect(status.stdout).toMatch(/certificate\s+32\s+0/);
    const json = JSON.parse((await runCli(["status", "--json"], env)).stdout);
    expect(json.bin.map((k: { kind: string; length: number }) => [k.kind, k.length])).toEqual([
      ["blob_prefix", 1],
      ["certificate", 32],
    ]);

    const watch = spawnCli(["status", "--watch"], env);
    await watch.waitFor(/== Bin/);
    worker = spawnCli(["worker", "--no-cron"], env);
    await until(async () => worker.stderr().includes("worker running"));
    try {
      await watch.waitFor(/bin empty \(33 drained\)/, 60_000);
    } finally {
      await worker.stop("SIGTERM");
    }
    expect(watch.stderr()).toMatch(/bin .*\| \d+\/33 drained/);

    const ca = new LocalCa(db.pool, new SecretBox(key), { name: "default" });
    const { rows } = await db.query("select serial from gk_public.certificates where owner_team_id = $1", [team]);
    expect(await crlSerials(ca)).toEqual(new Set(rows.map((r) => r.serial)));
    expect((await blobs.list(`teams/${team}/`, { limit: 10 })).keys).toEqual([]);
    expect((await blobs.list(`teams/${keep}/`, { limit: 10 })).keys).toEqual([`teams/${keep}/o/1`]);
  });
});
