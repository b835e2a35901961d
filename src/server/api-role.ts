// The admin server's database connections never run as the owner: every connection of its pools
// starts as gk_api (migration 0091_api_role.sql, grants in sql/920_api_role.sql), set in the
// connection's startup options, so RESET ROLE returns to gk_api and not to the login role.
// GraphQL then switches per transaction to gk_admin/gk_viewer (pgSettings.role).
//  - With a login role of its own (API_DATABASE_URL, or the embedded database's gk_api_login):
//    a NOINHERIT, non-superuser member of gk_api, gk_admin and gk_viewer.
//  - Without one: DATABASE_URL's role, switching to gk_api. Weaker: that session user (often a
//    superuser) can still SET ROLE back to itself, e.g. from injected SQL.
import type pg from "pg";
import { UserError } from "../lib/errors.ts";

export const API_ROLE = "gk_api";
/** application_name of the server's connections (as pg_stat_activity shows them), unless the URL sets one. */
export const API_APPLICATION_NAME = "groundskeeper api";

/** `url` with the startup options that make every connection begin as gk_api. */
export function apiConnectionString(url: string): string {
  const u = new URL(url);
  const options = u.searchParams.get("options");
  u.searchParams.set("options", [options, `-c role=${API_ROLE}`].filter(Boolean).join(" "));
  if (!u.searchParams.has("application_name")) u.searchParams.set("application_name", API_APPLICATION_NAME);
  return u.toString();
}

export interface ApiSession {
  sessionUser: string;
  currentUser: string;
  /** Whether the login role is a superuser (the SET ROLE fallback on a superuser DATABASE_URL). */
  sessionSuperuser: boolean;
}

/**
 * Checks a connection of the API pool: it runs as gk_api, and a login role of its own
 * (`ownLogin`: API_DATABASE_URL or the embedded one) is no superuser. A wrong setup is one line.
 */
export async function checkApiSession(pool: Pick<pg.Pool, "query">, ownLogin: boolean): Promise<ApiSession> {
  let rows: { session_user: string; current_user: string; session_super: boolean }[];
  try {
    ({ rows } = await pool.query(
      `select session_user::text as session_user, current_user::text as current_user,
              (select rolsuper from pg_catalog.pg_roles where rolname = session_user) as session_super`,
    ));
  } catch (e) {
    const err = e as { code?: string; message: string };
    // 42704: role "gk_api" does not exist (not migrated); 42501: the login role is not its member.
    if (err.code === "42704" || err.code === "42501" || /role "gk_api"/.test(err.message)) {
      throw new UserError(
        `the API's connections cannot switch to role ${API_ROLE} (${err.message}): migrate the database, and make the API's login role a member (grant ${API_ROLE}, gk_admin, gk_viewer to <role>)`,
      );
    }
    throw e;
  }
  const r = rows[0]!;
  if (r.current_user !== API_ROLE) throw new UserError(`the API's connections run as ${r.current_user}, not ${API_ROLE}`);
  if (ownLogin && r.session_super) {
    throw new UserError(
      `API_DATABASE_URL logs in as ${r.session_user}, a superuser: give the API a role without SUPERUSER (see README, "Database roles")`,
    );
  }
  return { sessionUser: r.session_user, currentUser: r.current_user, sessionSuperuser: r.session_super };
}
