// The operator's path, as real processes: `groundskeeper tuf init` writes the root keys and
// publishes; `groundskeeper serve` serves the repository over HTTP through the /tuf/ route; a
// tuf-js client bootstraps from it; `tuf keygen` + `tuf rotate-root` rotate root; and the
// client follows. Bad input gets one-line errors.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Updater } from "tuf-js";
import { createTestDb } from "../helpers/db.ts";
import { cliEnv, runCli, spawnCli, tempHome, type LongRunning } from "../helpers/cli.ts";
import { freePort } from "../../src/db/embedded.ts";
import { FsBlobStore } from "../../src/adapters/blobs/fs.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { metadataKey } from "../../src/tuf/layout.ts";
import { signDocument, timestampSigned } from "../../src/tuf/metadata.ts";
import { loadOnlineKey } from "../../src/tuf/online-key.ts";
import { publishTeam } from "../../src/tuf/publish.ts";
import { addTargets, fakeTarget, tmpDir } from "./helpers/tuf.ts";
import { type Published, verifyAfterEach } from "./helpers/verifier.ts";

const db = await createTestDb();
const home = tempHome();
const env = cliEnv({
  DATABASE_URL: db.url,
  GROUNDSKEEPER_HOME: home,
  GK_BLOBS_DIR: path.join(home, "blobs"),
  GK_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
});
const keysDir = tmpDir("cli-keys");
let server: LongRunning;
let base: string;
// What the CLI published, checked with securesystemslib after each test once it exists.
let acme: Published | undefined;
verifyAfterEach(db, () => (acme ? [acme] : []));

beforeAll(async () => {
  await db.query("insert into gk_public.teams (name) values ('acme')");
  const port = await freePort();
  server = spawnCli(["serve", "--port", String(port)], env);
  await server.waitFor(/GraphQL:/);
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await server?.stop();
});

function oneLineError(r: { code: number | null; stderr: string }, re: RegExp) {
  expect(r.code).toBe(1);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(re);
}

const clientDir = tmpDir("cli-client");
/** The key files of the current root (v2 after the rotate-root test). */
let rootKeys: string[] = [];
const updater = () =>
  new Updater({
    metadataDir: clientDir,
    metadataBaseUrl: `${base}/tuf/acme/metadata`,
    config: { prefixTargetsWithHash: false, fetchRetries: 0 },
  });

describe("groundskeeper tuf", () => {
  it("init writes 0600 key files, publishes, and the served repository is accepted by tuf-js", async () => {
    const r = await runCli(
      ["tuf", "init", "--team", "acme", "--keys-dir", keysDir, "--keys", "3", "--threshold", "2", "--bins", "16"],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/16 bins, root 2 of 3/);
    const team = await db.query("select team_id from gk_public.tuf_repositories");
    acme = { teamId: team.rows[0].team_id, blobs: new FsBlobStore(path.join(home, "blobs")) };
    const files = fs.readdirSync(keysDir).map((f) => path.join(keysDir, f));
    expect(files).toHaveLength(3);
    for (const f of files) expect(fs.statSync(f).mode & 0o777).toBe(0o600);

    const res = await fetch(`${base}/tuf/acme/metadata/1.root.json`);
    expect(res.status).toBe(200);
    fs.writeFileSync(path.join(clientDir, "root.json"), Buffer.from(await res.arrayBuffer()));
    await updater().refresh();
    expect((await fetch(`${base}/tuf/acme/metadata/2.root.json`)).status).toBe(404);
    expect((await fetch(`${base}/tuf/nobody/metadata/1.root.json`)).status).toBe(404);
    expect((await fetch(`${base}/tuf/acme/metadata/..%2F..%2Fsecret`)).status).toBe(404);
  });

  it("targets added by SQL are published by `tuf publish` and found by the client", async () => {
    const { rows } = await db.query("select id from gk_public.teams where name = 'acme'");
    await addTargets(db, rows[0].id, [fakeTarget(1, "cli")]);
    const r = await runCli(["tuf", "publish", "--team", "acme"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/signed 3 documents \(1 bins\)/);
    const u = updater();
    await u.refresh();
    expect((await u.getTargetInfo(fakeTarget(1, "cli").path))?.hashes.sha256).toBe(fakeTarget(1, "cli").hashes.sha256);
    const status = await runCli(["tuf", "status", "--json"], env);
    expect(JSON.parse(status.stdout)[0]).toMatchObject({ team_name: "acme", dirty_roles: "0", pending_uploads: "0" });
  });

  it("rotate-root with key files; the client walks to root v2", async () => {
    const newDir = tmpDir("cli-new-keys");
    const g = await runCli(["tuf", "keygen", "--keys-dir", newDir, "--prefix", "acme.v2", "--count", "2"], env);
    expect(g.code, g.stderr).toBe(0);
    const newKeys = fs.readdirSync(newDir).map((f) => path.join(newDir, f));
    rootKeys = newKeys;
    const oldKeys = fs.readdirSync(keysDir).map((f) => path.join(keysDir, f));

    oneLineError(
      await runCli(["tuf", "rotate-root", "--team", "acme", "--old-keys", oldKeys[0], "--new-keys", ...newKeys], env),
      /needs 2 of its keys, got 1/,
    );
    const r = await runCli(["tuf", "rotate-root", "--team", "acme", "--old-keys", ...oldKeys.slice(0, 2), "--new-keys", ...newKeys], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/root v2 .* uploaded as 2\.root\.json/);
    await updater().refresh();
    expect(JSON.parse(fs.readFileSync(path.join(clientDir, "root.json"), "utf8")).signed.version).toBe(2);
  });

  it("rotate-root --rotate-online-key: the client moves to the new online key, the old one verifies nothing new", async () => {
    const teamId = acme!.teamId;
    const master = new SecretBox(Buffer.from(env.GK_MASTER_KEY!, "base64"));
    const oldOnline = await fromPool(db.pool)((c) => loadOnlineKey(c, master, teamId));
    const trusted = (role: string) => JSON.parse(fs.readFileSync(path.join(clientDir, `${role}.json`), "utf8"));
    const signers = (role: string) => trusted(role).signatures.map((x: { keyid: string }) => x.keyid);
    await updater().refresh();
    expect(trusted("root").signed.version).toBe(2);
    expect(signers("timestamp")).toEqual([oldOnline.keyid]);

    // The same root keys as --old-keys and --new-keys: only the online key changes.
    const r = await runCli(
      ["tuf", "rotate-root", "--team", "acme", "--old-keys", ...rootKeys, "--new-keys", ...rootKeys, "--rotate-online-key"],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const newKeyId = r.stdout.match(/new online key ([0-9a-f]{64}), (\d+) documents re-signed/)?.[1];
    expect(newKeyId, r.stdout).toBeDefined();
    expect(newKeyId).not.toBe(oldOnline.keyid);
    const repo = (await db.query("select root_version, online_key_id from gk_public.tuf_repositories where team_id = $1", [teamId]))
      .rows[0];
    expect(repo).toEqual({ root_version: 3, online_key_id: newKeyId });

    // A client at root v2 walks to v3, which names only the new key for every online role.
    await updater().refresh();
    const root = trusted("root").signed;
    expect(root.version).toBe(3);
    for (const role of ["targets", "snapshot", "timestamp"]) expect(root.roles[role].keyids).toEqual([newKeyId]);
    expect(Object.keys(trusted("targets").signed.delegations.keys)).toEqual([newKeyId]);

    // What is published from now on is signed by the new key alone, and the client finds it.
    const before = (await db.query("select max(id) as id from gk_public.tuf_metadata where team_id = $1", [teamId])).rows[0].id;
    await addTargets(db, teamId, [fakeTarget(2, "cli")]);
    await publishTeam(fromPool(db.pool), master, acme!.blobs, teamId); // `tuf publish` has its own test above
    const u = updater();
    await u.refresh();
    expect((await u.getTargetInfo(fakeTarget(2, "cli").path))?.hashes.sha256).toBe(fakeTarget(2, "cli").hashes.sha256);
    for (const role of ["timestamp", "snapshot"]) expect(signers(role)).toEqual([newKeyId]);
    const published = (
      await db.query<{ role: string; document: string }>(
        "select role, document from gk_public.tuf_metadata where team_id = $1 and id > $2 order by id",
        [teamId, before],
      )
    ).rows;
    expect(published.map((d) => d.role)).toEqual([expect.stringMatching(/^bins-/), "snapshot", "timestamp"]);
    for (const d of published)
      expect(
        JSON.parse(d.document).signatures.map((x: { keyid: string }) => x.keyid),
        d.role,
      ).toEqual([newKeyId]);

    // A newer timestamp signed by the old online key is refused.
    const key = metadataKey(teamId, "timestamp.json");
    const original = (await acme!.blobs.get(key))!;
    const current = JSON.parse(Buffer.from(original).toString()).signed;
    const forged = signDocument(
      timestampSigned(current.version + 1, new Date(Date.now() + 86_400_000), current.meta["snapshot.json"].version),
      [oldOnline],
    );
    await acme!.blobs.put(key, forged);
    try {
      await expect(updater().refresh()).rejects.toThrow("timestamp was signed by 0/1 keys");
    } finally {
      await acme!.blobs.put(key, original);
    }
  }, 120_000); // a CLI process

  it("refuses bad input with one line", async () => {
    await db.query("insert into gk_public.teams (name) values ('beta')");
    // Independent processes, none of which may write anything: run side by side.
    const x = () => tmpDir("x");
    const cases: [string[], RegExp][] = [
      [["tuf", "init", "--team", "acme", "--keys-dir", x()], /already has a TUF repository/],
      [["tuf", "init", "--team", "ghost", "--keys-dir", x()], /no team named 'ghost'/],
      [["tuf", "init", "--team", "beta", "--keys-dir", x(), "--bins", "100"], /power of two/],
      [["tuf", "init", "--team", "beta", "--keys-dir", x(), "--keys", "2", "--threshold", "3"], /--threshold must be 1\.\.2/],
      [["tuf", "init", "--team", "beta", "--keys-dir", x(), "--timestamp-lifetime", "1 hour"], /invalid lifetimes/],
      [["tuf", "rotate-root", "--team", "acme", "--old-keys", "/nonexistent", "--new-keys", "/nonexistent"], /cannot read key file/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, env)));
    for (const [i, r] of results.entries()) oneLineError(r, cases[i][1]);
    expect((await db.query("select count(*)::int as n from gk_public.tuf_repositories")).rows[0].n).toBe(1);
  }, 180_000); // six CLI processes, each starting Node and opening the database: slow on a busy machine
});
