// The embedded database's login role for the admin server (gk_api_login), so that under `start`
// and `serve` without DATABASE_URL no API connection logs in as the superuser. Made (or updated)
// after every migrate with a random password kept next to the superuser's, in
// `<data>.api-password` (0600), scram-sha-256 like every login there (src/db/embedded.ts).
// NOINHERIT: it holds no privilege until a connection switches to gk_api (src/server/api-role.ts),
// and it may switch to gk_admin/gk_viewer for GraphQL requests. The mutual-TLS listeners have a
// login of their own (src/db/embedded-peer-login.ts): this one is no member of gk_peer.
import fs from "node:fs";
import pg from "pg";
import { embeddedFiles, ensureSecretFile, readNumber } from "./embedded.ts";

export const API_LOGIN_ROLE = "gk_api_login";

/** The URL of the embedded login `role` whose password is in `passwordFile`, or null without one. */
export function embeddedLoginUrl(dataDir: string, role: string, passwordFile: string, database = "groundskeeper"): string | null {
  const port = readNumber(embeddedFiles(dataDir).port);
  const password = fs.existsSync(passwordFile) ? fs.readFileSync(passwordFile, "utf8").trim() : "";
  return port && password ? `postgres://${role}:${password}@127.0.0.1:${port}/${database}` : null;
}

/** The URL the admin server logs in with, or null when the cluster has no API password yet. */
export function embeddedApiUrl(dataDir: string, database = "groundskeeper"): string | null {
  return embeddedLoginUrl(dataDir, API_LOGIN_ROLE, embeddedFiles(dataDir).apiPassword, database);
}

/**
 * Creates or updates the login `role` on the cluster of `ownerUrl`: NOINHERIT, no attribute, the
 * password of `passwordFile` (made on first use), a member of exactly `memberOf` among `known`
 * (the others revoked: a cluster of an older release may have granted them). Idempotent; a
 * concurrent creation (another command on the same cluster) is tolerated like the nologin roles'
 * in migrations/0001_foundation.sql. Returns the login's URL.
 */
export async function ensureEmbeddedLogin(
  ownerUrl: string,
  dataDir: string,
  login: { role: string; passwordFile: string; memberOf: string[]; known: string[] },
): Promise<string> {
  const password = ensureSecretFile(login.passwordFile);
  const client = new pg.Client({ connectionString: ownerUrl });
  const role = client.escapeIdentifier(login.role);
  const list = (roles: string[]) => roles.map((r) => client.escapeIdentifier(r)).join(", ");
  await client.connect();
  try {
    await client.query(`do $$
      begin
        create role ${role} login noinherit;
      exception when duplicate_object or unique_violation then null;
      end $$`);
    await client.query("set password_encryption = 'scram-sha-256'");
    await client.query(
      `alter role ${role} login noinherit nosuperuser nocreatedb nocreaterole nobypassrls noreplication
         password ${client.escapeLiteral(password)}`,
    );
    await client.query(`do $$
      begin
        grant ${list(login.memberOf)} to ${role};
      exception when unique_violation then null;
      end $$`);
    const others = login.known.filter((r) => !login.memberOf.includes(r));
    if (others.length) await client.query(`revoke ${list(others)} from ${role}`);
  } finally {
    await client.end();
  }
  const database = new URL(ownerUrl).pathname.slice(1) || "groundskeeper";
  return embeddedLoginUrl(dataDir, login.role, login.passwordFile, database)!;
}

/** The roles an embedded login may be granted (each login gets its own few of them). */
export const EMBEDDED_LOGIN_ROLES = ["gk_api", "gk_admin", "gk_viewer", "gk_peer"];

/** Creates or updates gk_api_login (the cluster is migrated: its roles exist) and returns its URL. */
export function ensureEmbeddedApiLogin(ownerUrl: string, dataDir: string): Promise<string> {
  return ensureEmbeddedLogin(ownerUrl, dataDir, {
    role: API_LOGIN_ROLE,
    passwordFile: embeddedFiles(dataDir).apiPassword,
    memberOf: ["gk_api", "gk_admin", "gk_viewer"],
    known: EMBEDDED_LOGIN_ROLES,
  });
}
