// The master key step of the startup sequence (src/cli/boot.ts): the process's SecretBox, under
// which secrets (CA keys, TUF online keys, parked private keys) are sealed at rest. The database
// keeps the fingerprint of the key it first saw (gk_private.master_key); a process with another
// key refuses to start, with one line, rather than fail every job that opens a secret.
import pg from "pg";
import { UserError } from "../lib/errors.ts";
import { type SecretBox, secretBoxFromEnv } from "../lib/secrets.ts";
import type { CliContext, Database } from "./context.ts";

export async function loadMasterKey(ctx: CliContext, db: Database): Promise<SecretBox> {
  const box = secretBoxFromEnv(process.env, ctx.config.home);
  const recorded = await recordFingerprint(db.url, box.fingerprint());
  if (recorded !== box.fingerprint()) {
    const source = process.env.GK_MASTER_KEY
      ? "GK_MASTER_KEY"
      : process.env.GK_MASTER_KEY_FILE
        ? `GK_MASTER_KEY_FILE ${process.env.GK_MASTER_KEY_FILE}`
        : `the key file in ${ctx.config.home}`;
    throw new UserError(
      `the master key of this process (${source}, fingerprint ${box.fingerprint().slice(0, 12)}) is not the one this database's secrets are sealed under (${recorded.slice(0, 12)}): give every process the same GK_MASTER_KEY`,
    );
  }
  return box;
}

/** Records `fingerprint` unless one is recorded already; returns the recorded one. */
async function recordFingerprint(url: string, fingerprint: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query("insert into gk_private.master_key (fingerprint) values ($1) on conflict do nothing", [fingerprint]);
    const { rows } = await client.query<{ fingerprint: string }>("select fingerprint from gk_private.master_key");
    return rows[0]!.fingerprint;
  } finally {
    await client.end().catch(() => {});
  }
}
