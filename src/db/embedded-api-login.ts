// The embedded database's login role for the admin server (gk_api_login), so that under `start`
// and `serve` without DATABASE_URL no API connection logs in as the superuser. Made (or updated)
// after every migrate with a random password kept next to the superuser's, in
// `<data>.api-password` (0600), scram-sha-256 like every login there (src/db/embedded.ts).
// NOINHERIT: it holds no privilege until a connection switches to gk_api (src/server/api-role.ts),
// and it may switch to gk_admin/gk_viewer for GraphQL requests.
import fs from "node:fs";
import pg from "pg";
import { embeddedFiles, ensureSecretFile, readNumber } from "./embedded.ts";

export const API_LOGIN_ROLE = "gk_api_login";

/** The URL the admin server logs in with, or null when the cluster has no API password yet. */
export function embeddedApiUrl(dataDir: string, database = "groundskeeper"): string | null {
  const files = embeddedFiles(dataDir);
  const port = readNumber(files.port);
  const password = fs.existsSync(files.apiPassword) ? fs.readFileSync(files.apiPassword, "utf8").trim() : "";
  return port && password ? `postgres://${API_LOGIN_ROLE}:${password}@127.0.0.1:${port}/${database}` : null;
}

/**
 * Creates or updates gk_api_login on the cluster of `ownerUrl` (migrated: gk_api exists) and
 * returns its URL. Idempotent; a concurrent creation (another command on the same cluster) is
 * tolerated like the nologin roles' in migrations/0001_foundation.sql.
 */
export async function ensureEmbeddedApiLogin(ownerUrl: string, dataDir: string): Promise<string> {
  const password = ensureSecretFile(embeddedFiles(dataDir).apiPassword);
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query(`do $$
      begin
        create role ${API_LOGIN_ROLE} login noinherit;
      exception when duplicate_object or unique_violation then null;
      end $$`);
    await client.query("set password_encryption = 'scram-sha-256'");
    await client.query(
      `alter role ${API_LOGIN_ROLE} login noinherit nosuperuser nocreatedb nocreaterole nobypassrls noreplication
         password ${client.escapeLiteral(password)}`,
    );
    await client.query(`do $$
      begin
        grant gk_api, gk_admin, gk_viewer to ${API_LOGIN_ROLE};
      exception when unique_violation then null;
      end $$`);
  } finally {
    await client.end();
  }
  const database = new URL(ownerUrl).pathname.slice(1) || "groundskeeper";
  return embeddedApiUrl(dataDir, database)!;
}
