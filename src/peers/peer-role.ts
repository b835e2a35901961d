// The mutual-TLS listeners' database connections (peer gateway, robot API) never run as the
// owner: every connection starts as gk_peer (migration 0095_peer_role.sql, grants in
// sql/930_peer_role.sql), which reaches only what their routes need. The login is the admin
// server's (API_DATABASE_URL, or the embedded gk_api_login, a NOINHERIT member of gk_peer), or
// without one DATABASE_URL's role switching to gk_peer (weaker, as for gk_api: that session user
// can SET ROLE back).
import type pg from "pg";
import { checkRoleSession, type RoleSession, roleConnectionString } from "../db/session-role.ts";

export const PEER_ROLE = "gk_peer";
/** application_name of the listeners' connections (as pg_stat_activity shows them), unless the URL sets one. */
export const PEER_APPLICATION_NAME = "groundskeeper peers";

/** `url` with the startup options that make every connection begin as gk_peer. */
export function peerConnectionString(url: string): string {
  return roleConnectionString(url, PEER_ROLE, PEER_APPLICATION_NAME);
}

/** Checks that `pool`'s connections run as gk_peer; a wrong setup is one line (`name`: "robot API"). */
export function checkPeerSession(pool: Pick<pg.Pool, "query">, name: string): Promise<RoleSession> {
  return checkRoleSession(pool, PEER_ROLE, `the ${name}'s`, PEER_ROLE);
}
