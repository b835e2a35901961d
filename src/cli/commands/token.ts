// groundskeeper token create|list|revoke: bearer tokens of the admin API.
import type { Command } from "commander";
import { UserError } from "../../lib/errors.ts";
import { formatTable } from "../format.ts";

async function withDb<T>(cmd: Command, fn: (db: import("pg").Pool) => Promise<T>): Promise<T> {
  const { cliContext, openDatabase } = await import("../context.ts");
  const { createPool } = await import("../../db/pool.ts");
  const db = await openDatabase(cliContext(cmd));
  const pool = createPool(db.url, 2);
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await db.close();
  }
}

export default function register(program: Command): void {
  const token = program.command("token").description("manage bearer tokens of the admin API");

  token
    .command("create")
    .description("create a token and print it (it is shown only once; the database keeps its sha256)")
    .requiredOption("-r, --role <role>", "admin (read and change) or viewer (read only)")
    .requiredOption("-n, --name <name>", "who or what the token is for")
    .action(async (opts: { role: string; name: string }, cmd: Command) => {
      const { createToken, parseRole } = await import("../../server/tokens.ts");
      const role = parseRole(opts.role); // before touching the database
      const created = await withDb(cmd, (db) => createToken(db, opts.name, role));
      process.stderr.write(`created ${role} token '${opts.name}' (id ${created.id}); store it now, it is not shown again:\n`);
      console.log(created.token);
    });

  token
    .command("list")
    .description("list tokens (never their values)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { listTokens } = await import("../../server/tokens.ts");
      const rows = await withDb(cmd, (db) => listTokens(db));
      if (opts.json) return console.log(JSON.stringify(rows, null, 2));
      console.log(
        formatTable(
          ["id", "name", "role", "created", "last used", "revoked"],
          rows.map((t) => [t.id, t.name, t.role, iso(t.created_at), iso(t.last_used_at), iso(t.revoked_at)]),
        ),
      );
    });

  token
    .command("revoke")
    .description("revoke a token by id or name (takes effect on the next request)")
    .argument("<id-or-name>")
    .action(async (idOrName: string, _opts, cmd: Command) => {
      const { revokeToken } = await import("../../server/tokens.ts");
      const n = await withDb(cmd, (db) => revokeToken(db, idOrName));
      if (n === 0) throw new UserError(`no active token with id or name '${idOrName}'`);
      console.log(`revoked ${n} token${n === 1 ? "" : "s"}`);
    });
}

function iso(d: Date | null): string {
  return d ? d.toISOString().replace(/\.\d+Z$/, "Z") : "-";
}
