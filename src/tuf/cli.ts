// groundskeeper tuf init|keygen|rotate-root|publish|status: a team's TUF repository. The logic
// lives in src/tuf/; this file parses options and prints results.
import type { Command } from "commander";
import { UserError } from "../lib/errors.ts";
import { createPool } from "../db/pool.ts";
import { cliContext, openDatabase, type CliContext } from "../cli/context.ts";
import { formatTable } from "../cli/format.ts";

async function withDb<T>(cmd: Command, fn: (pool: import("pg").Pool, ctx: CliContext) => Promise<T>): Promise<T> {
  const ctx = cliContext(cmd);
  const db = await openDatabase(ctx);
  const pool = createPool(db.url, 3);
  try {
    return await fn(pool, ctx);
  } finally {
    await pool.end();
    await db.close();
  }
}

function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

async function blobsOf(ctx: CliContext) {
  const { blobsFromEnv } = await import("../adapters/blobs/from-config.ts");
  const blobs = await blobsFromEnv(process.env, ctx.config.home);
  if (!blobs) throw new UserError("no blob store configured (GK_BLOBS)");
  return blobs;
}

async function teamIdOf(pool: import("pg").Pool, team: string): Promise<string> {
  const { rows } = await pool.query(
    "select p.team_id from gk_public.tuf_repositories p join gk_public.teams t on t.id = p.team_id where t.name = $1",
    [team],
  );
  if (!rows[0]) throw new UserError(`team '${team}' has no TUF repository`);
  return rows[0].team_id;
}

export default function register(program: Command): void {
  const tuf = program.command("tuf").description("a team's TUF repository: bootstrap, root rotation, publishing, status");

  tuf
    .command("init")
    .description("bootstrap a team's repository: root keys to files (0600), root v1, targets, bins, snapshot, timestamp; publish")
    .requiredOption("-t, --team <name>", "the team")
    .requiredOption("-k, --keys-dir <dir>", "where to write the root private keys (keep them offline)")
    .option("--keys <n>", "number of root keys", positiveInt("--keys"), 3)
    .option("--threshold <n>", "root signatures required", positiveInt("--threshold"), 2)
    .option("--bins <n>", "hashed bins, a power of two from 2 to 16384", positiveInt("--bins"), 256)
    .option("--root-expires-days <n>", "root lifetime in days", positiveInt("--root-expires-days"), 365)
    .option("--timestamp-lifetime <interval>", "e.g. '1 day'")
    .option("--snapshot-lifetime <interval>", "e.g. '7 days'")
    .option("--bins-lifetime <interval>", "e.g. '30 days'")
    .option("--targets-lifetime <interval>", "e.g. '365 days'")
    .option("--resign-window <interval>", "re-sign a role expiring within this window, e.g. '6 hours'")
    .option("--no-publish", "only create it; a worker publishes it")
    .action(async (o, cmd: Command) => {
      const { initRepository } = await import("./init.ts");
      const { fromPool } = await import("./db.ts");
      const { tufSecretBox } = await import("./online-key.ts");
      const { publishTeam } = await import("./publish.ts");
      await withDb(cmd, async (pool, ctx) => {
        const blobs = o.publish ? await blobsOf(ctx) : undefined;
        const r = await initRepository(fromPool(pool), tufSecretBox(), {
          team: o.team,
          keysDir: o.keysDir,
          keys: o.keys,
          threshold: o.threshold,
          bins: o.bins,
          rootExpiresDays: o.rootExpiresDays,
          lifetimes: {
            timestamp: o.timestampLifetime,
            snapshot: o.snapshotLifetime,
            bins: o.binsLifetime,
            targets: o.targetsLifetime,
            resignWindow: o.resignWindow,
          },
        });
        console.log(`TUF repository of team '${o.team}': ${r.bins} bins, root ${o.threshold} of ${o.keys}, online key ${r.onlineKeyId}`);
        console.log(`root private keys (keep offline; needed to rotate root):\n${r.keyFiles.map((f) => `  ${f}`).join("\n")}`);
        if (blobs) {
          const p = await publishTeam(fromPool(pool), tufSecretBox(), blobs, r.teamId);
          console.log(`published ${p.documents} documents (timestamp v${p.publishedTimestampVersion}); clients trust 1.root.json`);
        }
      });
    });

  tuf
    .command("keygen")
    .description("generate ed25519 key files (e.g. the new root keys for rotate-root)")
    .requiredOption("-k, --keys-dir <dir>", "where to write them")
    .requiredOption("-p, --prefix <name>", "file name prefix")
    .option("-n, --count <n>", "how many", positiveInt("--count"), 1)
    .action(async (o) => {
      const { generateKeyFiles } = await import("./keys.ts");
      for (const k of generateKeyFiles(o.keysDir, o.prefix, o.count)) console.log(`${k.keyid}  ${k.file}`);
    });

  tuf
    .command("rotate-root")
    .description("sign root N+1 with a threshold of the current root keys and of the new keys, store and upload it")
    .requiredOption("-t, --team <name>", "the team")
    .requiredOption("--old-keys <files...>", "key files of the current root (at least its threshold)")
    .requiredOption("--new-keys <files...>", "key files of the new root (all of them sign)")
    .option("--threshold <n>", "threshold of the new root (default: the current one)", positiveInt("--threshold"))
    .option("--expires-days <n>", "lifetime of the new root in days", positiveInt("--expires-days"), 365)
    .option("--rotate-online-key", "also replace the online key (e.g. compromised); every online role is re-signed with the new one")
    .action(async (o, cmd: Command) => {
      const { rotateRoot } = await import("./rotate.ts");
      const { fromPool } = await import("./db.ts");
      const { tufSecretBox } = await import("./online-key.ts");
      const { publishTeam } = await import("./publish.ts");
      await withDb(cmd, async (pool, ctx) => {
        const blobs = await blobsOf(ctx);
        const r = await rotateRoot(fromPool(pool), {
          team: o.team,
          oldKeyFiles: o.oldKeys,
          newKeyFiles: o.newKeys,
          threshold: o.threshold,
          expiresDays: o.expiresDays,
          rotateOnlineKey: Boolean(o.rotateOnlineKey),
          box: tufSecretBox(),
        });
        // Signs the timestamp (every role, with a new online key) under the new root, then
        // uploads: the new root goes out after that timestamp.
        const p = await publishTeam(fromPool(pool), tufSecretBox(), blobs, r.teamId);
        console.log(
          `root v${r.version} of team '${o.team}' signed and uploaded as ${r.version}.root.json` +
            (o.rotateOnlineKey ? `; new online key ${r.onlineKeyId}, ${p.documents} documents re-signed` : ""),
        );
      });
    });

  tuf
    .command("publish")
    .description("sign what is dirty and upload what is pending, now (what the tuf__publish job does)")
    .requiredOption("-t, --team <name>", "the team")
    .action(async (o, cmd: Command) => {
      const { fromPool } = await import("./db.ts");
      const { tufSecretBox } = await import("./online-key.ts");
      const { publishTeam } = await import("./publish.ts");
      await withDb(cmd, async (pool, ctx) => {
        const r = await publishTeam(fromPool(pool), tufSecretBox(), await blobsOf(ctx), await teamIdOf(pool, o.team));
        console.log(`signed ${r.documents} documents (${r.bins} bins), uploaded ${r.uploaded}`);
      });
    });

  tuf
    .command("status")
    .description("repositories: dirty roles, versions, expiries, pending uploads")
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const rows = await withDb(
        cmd,
        async (pool) => (await pool.query("select * from gk_public.tuf_repository_status order by team_name")).rows,
      );
      if (o.json) return console.log(JSON.stringify(rows, null, 2));
      const iso = (d: Date | null) => (d ? d.toISOString().replace(/\.\d+Z$/, "Z") : "-");
      console.log(
        formatTable(
          ["team", "bins", "root", "dirty", "snapshot", "timestamp", "published", "ts expires", "pending", "failing since"],
          rows.map((r) => [
            r.team_name,
            String(r.bins),
            `v${r.root_version}`,
            String(r.dirty_roles),
            `v${r.snapshot_version}`,
            `v${r.timestamp_version}`,
            `v${r.published_timestamp_version}`,
            iso(r.timestamp_expires),
            String(r.pending_uploads),
            r.publish_failing_since ? `${iso(r.publish_failing_since)}: ${String(r.last_publish_error).slice(0, 60)}` : "-",
          ]),
        ),
      );
    });
}
