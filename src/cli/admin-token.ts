// The admin token of `groundskeeper start`: created on first start, its plaintext kept only in
// a mode-0600 file under GROUNDSKEEPER_HOME (the database has its sha256); `start` prints it once,
// when it is created.
import fs from "node:fs";
import path from "node:path";
import type pg from "pg";
import { createToken, roleForToken } from "../server/tokens.ts";

export const ADMIN_TOKEN_FILE = "admin-token";

export async function ensureAdminToken(
  db: Pick<pg.Pool, "query">,
  home: string,
): Promise<{ token: string; created: boolean; file: string }> {
  const file = path.join(home, ADMIN_TOKEN_FILE);
  if (fs.existsSync(file)) {
    const token = fs.readFileSync(file, "utf8").trim();
    // Still valid in this database? (It may have been revoked, or DATABASE_URL points elsewhere.)
    if (token && (await roleForToken(db, token)) === "gk_admin") return { token, created: false, file };
  }
  const { token } = await createToken(db, "admin (groundskeeper start)", "admin");
  fs.mkdirSync(home, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
  return { token, created: true, file };
}
