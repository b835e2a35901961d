// The admin server's database connections never run as the owner: every connection of its pools
// starts as gk_api (migration 0091_api_role.sql, grants in sql/920_api_role.sql), set in the
// connection's startup options, so RESET ROLE returns to gk_api and not to the login role.
// GraphQL then switches per transaction to gk_admin/gk_viewer (pgSettings.role).
//  - With a login role of its own (API_DATABASE_URL, or the embedded database's gk_api_login):
//    a NOINHERIT, non-superuser member of gk_api, gk_admin and gk_viewer.
//  - Without one: DATABASE_URL's role, switching to gk_api. Weaker: that session user (often a
//    superuser) can still SET ROLE back to itself, e.g. from injected SQL.
import type pg from "pg";
import { checkRoleSession, type RoleSession, roleConnectionString } from "../db/session-role.ts";
import { UserError } from "../lib/errors.ts";

export const API_ROLE = "gk_api";
/** application_name of the server's connections (as pg_stat_activity shows them), unless the URL sets one. */
export const API_APPLICATION_NAME = "groundskeeper api";

/** `url` with the startup options that make every connection begin as gk_api. */
export function apiConnectionString(url: string): string {
  return roleConnectionString(url, API_ROLE, API_APPLICATION_NAME);
}

export type ApiSession = RoleSession;

/**
 * Checks a connection of the API pool: it runs as gk_api, and a login role of its own
 * (`ownLogin`: API_DATABASE_URL or the embedded one) is no superuser. A wrong setup is one line.
 */
export async function checkApiSession(pool: Pick<pg.Pool, "query">, ownLogin: boolean): Promise<ApiSession> {
  const r = await checkRoleSession(pool, API_ROLE, "the API's", `${API_ROLE}, gk_admin, gk_viewer`);
  if (ownLogin && r.sessionSuperuser) {
    throw new UserError(
      `API_DATABASE_URL logs in as ${r.sessionUser}, a superuser: give the API a role without SUPERUSER (see README, "Database roles")`,
    );
  }
  return r;
}
