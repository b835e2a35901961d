// Connections that start as a role of their own (the admin server's gk_api, the listeners'
// gk_peer): the role is set in the connection's startup options, so every pooled connection is
// born as it and RESET ROLE returns to it, not to the login role.
import type pg from "pg";
import { UserError } from "../lib/errors.ts";

/** `url` with the startup options that make every connection begin as `role`, named `applicationName` unless the URL names one. */
export function roleConnectionString(url: string, role: string, applicationName: string): string {
  const u = new URL(url);
  const options = u.searchParams.get("options");
  u.searchParams.set("options", [options, `-c role=${role}`].filter(Boolean).join(" "));
  if (!u.searchParams.has("application_name")) u.searchParams.set("application_name", applicationName);
  return u.toString();
}

export interface RoleSession {
  sessionUser: string;
  currentUser: string;
  /** Whether the login role is a superuser (the SET ROLE fallback on a superuser DATABASE_URL). */
  sessionSuperuser: boolean;
}

/**
 * Checks a connection of `pool`: it runs as `role`. `who` names the connections in the one line
 * a wrong setup gives ("the API's"), `memberOf` the roles the login must be a member of.
 */
export async function checkRoleSession(pool: Pick<pg.Pool, "query">, role: string, who: string, memberOf: string): Promise<RoleSession> {
  let rows: { session_user: string; current_user: string; session_super: boolean }[];
  try {
    ({ rows } = await pool.query(
      `select session_user::text as session_user, current_user::text as current_user,
              (select rolsuper from pg_catalog.pg_roles where rolname = session_user) as session_super`,
    ));
  } catch (e) {
    const err = e as { code?: string; message: string };
    // 42704: the role does not exist (not migrated); 42501: the login role is not its member.
    if (err.code === "42704" || err.code === "42501" || err.message.includes(`role "${role}"`)) {
      throw new UserError(
        `${who} connections cannot switch to role ${role} (${err.message}): migrate the database, and make the login role a member (grant ${memberOf} to <role>)`,
      );
    }
    throw e;
  }
  const r = rows[0]!;
  if (r.current_user !== role) throw new UserError(`${who} connections run as ${r.current_user}, not ${role}`);
  return { sessionUser: r.session_user, currentUser: r.current_user, sessionSuperuser: r.session_super };
}
