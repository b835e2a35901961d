// The embedded database's login role for the mutual-TLS listeners (gk_peer_login): the peer
// gateway and the robot API log in as it, not as the admin server's gk_api_login, which is a
// member of gk_admin — SQL that reached a listener's connection could otherwise SET ROLE gk_admin.
// A NOINHERIT member of gk_peer and nothing else, made after every migrate like gk_api_login
// (src/db/embedded-api-login.ts), with its own random password in `<data>.peer-password` (0600).
import { EMBEDDED_LOGIN_ROLES, embeddedLoginUrl, ensureEmbeddedLogin } from "./embedded-api-login.ts";
import { embeddedFiles } from "./embedded.ts";

export const PEER_LOGIN_ROLE = "gk_peer_login";

/** The URL the listeners log in with, or null when the cluster has no peer password yet. */
export function embeddedPeerUrl(dataDir: string, database = "groundskeeper"): string | null {
  return embeddedLoginUrl(dataDir, PEER_LOGIN_ROLE, embeddedFiles(dataDir).peerPassword, database);
}

/** Creates or updates gk_peer_login (the cluster is migrated: gk_peer exists) and returns its URL. */
export function ensureEmbeddedPeerLogin(ownerUrl: string, dataDir: string): Promise<string> {
  return ensureEmbeddedLogin(ownerUrl, dataDir, {
    role: PEER_LOGIN_ROLE,
    passwordFile: embeddedFiles(dataDir).peerPassword,
    memberOf: ["gk_peer"],
    known: EMBEDDED_LOGIN_ROLES,
  });
}
