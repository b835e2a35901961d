// The mutual-TLS listeners' database connections (peer gateway, robot API) never run as the
// owner: every connection starts as gk_peer (migration 0095_peer_role.sql, grants in
// sql/930_peer_role.sql), which reaches only what their routes need. Their login is their own
// (PEER_DATABASE_URL, or the embedded gk_peer_login): a NOINHERIT member of gk_peer and of nothing
// that reaches further, so SQL that reached a listener's connection cannot SET ROLE to gk_admin,
// gk_api or the owner; startup refuses a login that could. Without one, DATABASE_URL's role
// switches to gk_peer (weaker, as for gk_api: that session user can SET ROLE back).
import type pg from "pg";
import { checkRoleSession, type RoleSession, roleConnectionString } from "../db/session-role.ts";
import { UserError } from "../lib/errors.ts";

export const PEER_ROLE = "gk_peer";
/** application_name of the listeners' connections (as pg_stat_activity shows them), unless the URL sets one. */
export const PEER_APPLICATION_NAME = "groundskeeper peers";

/** `url` with the startup options that make every connection begin as gk_peer. */
export function peerConnectionString(url: string): string {
  return roleConnectionString(url, PEER_ROLE, PEER_APPLICATION_NAME);
}

/**
 * Roles a listener's own login must not reach (by SET ROLE through any chain of memberships):
 * the admin API's roles, a superuser, and the owner of the database or of its schemas.
 */
const REACHABLE = `select r.rolname::text as role from pg_catalog.pg_roles r
   where r.rolname <> session_user and pg_catalog.pg_has_role(session_user, r.oid, 'member')
     and (r.rolname in ('gk_admin', 'gk_api', 'gk_viewer') or r.rolsuper
          or r.oid = (select d.datdba from pg_catalog.pg_database d where d.datname = current_database())
          or r.oid in (select n.nspowner from pg_catalog.pg_namespace n where n.nspname in ('gk_public', 'gk_private')))
   order by 1`;

/**
 * Checks that `pool`'s connections run as gk_peer; a wrong setup is one line (`name`: "robot
 * API"). With a login of the listeners' own (`ownLogin`), that login must be no superuser and
 * reach none of the roles above.
 */
export async function checkPeerSession(pool: Pick<pg.Pool, "query">, name: string, ownLogin = false): Promise<RoleSession> {
  const r = await checkRoleSession(pool, PEER_ROLE, `the ${name}'s`, PEER_ROLE);
  if (!ownLogin) return r;
  if (r.sessionSuperuser) {
    throw new UserError(
      `the ${name} logs in as ${r.sessionUser}, a superuser: give the listeners a login that is a member of gk_peer only (see README, "Database roles")`,
    );
  }
  const { rows } = await pool.query<{ role: string }>(REACHABLE);
  if (rows.length) {
    throw new UserError(
      `the ${name} logs in as ${r.sessionUser}, which can switch to ${rows.map((x) => x.role).join(", ")}: give the listeners a login that is a member of gk_peer only (see README, "Database roles")`,
    );
  }
  return r;
}
