// Admin API bearer tokens. A token is 32 random bytes (base64url, prefixed "gk_"); the database
// keeps only its sha256, so a leaked database does not leak usable tokens.
import crypto from "node:crypto";
import type pg from "pg";
import { UserError } from "../lib/errors.ts";

export type ApiRole = "admin" | "viewer";
export const API_ROLES: readonly ApiRole[] = ["admin", "viewer"];

/** The database role the API switches to for each token role. */
export const DB_ROLE: Record<ApiRole, string> = { admin: "gk_admin", viewer: "gk_viewer" };

type Queryable = Pick<pg.Pool, "query">;

export function parseRole(role: string): ApiRole {
  if ((API_ROLES as readonly string[]).includes(role)) return role as ApiRole;
  throw new UserError(`unknown role '${role}' (expected one of: ${API_ROLES.join(", ")})`);
}

export function hashToken(token: string): Buffer {
  return crypto.createHash("sha256").update(token, "utf8").digest();
}

export function generateToken(): string {
  return `gk_${crypto.randomBytes(32).toString("base64url")}`;
}

/** Creates a token and returns its plaintext: the only moment it exists outside the holder. */
export async function createToken(db: Queryable, name: string, role: ApiRole): Promise<{ id: string; token: string }> {
  if (!name.trim()) throw new UserError("token name must not be empty");
  const token = generateToken();
  const { rows } = await db.query<{ id: string }>("select gk_private.api_token_create($1, $2, $3) as id", [
    name,
    DB_ROLE[role],
    hashToken(token),
  ]);
  return { id: rows[0].id, token };
}

/** The database role for a presented token, or null when it is unknown or revoked. */
export async function roleForToken(db: Queryable, token: string): Promise<string | null> {
  return (await lookupToken(db, token))?.role ?? null;
}

/** Who presents a token: its id and name (never the secret) and its database role. */
export interface TokenIdentity {
  id: string;
  name: string;
  role: string;
}

/** The identity behind a presented token, or null when it is unknown or revoked. */
export async function lookupToken(db: Queryable, token: string): Promise<TokenIdentity | null> {
  const { rows } = await db.query<TokenIdentity>("select id, name, role from gk_private.api_token_lookup($1)", [hashToken(token)]);
  return rows[0] ?? null;
}

export async function revokeToken(db: Queryable, idOrName: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>("select gk_private.api_token_revoke($1) as n", [idOrName]);
  return Number(rows[0].n);
}

export interface TokenInfo {
  id: string;
  name: string;
  role: ApiRole;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export async function listTokens(db: Queryable): Promise<TokenInfo[]> {
  const { rows } = await db.query<TokenInfo>(
    `select id, name, case role when 'gk_admin' then 'admin' else 'viewer' end as role,
            created_at, last_used_at, revoked_at
       from gk_private.api_tokens order by created_at, name`,
  );
  return rows;
}

/** "Bearer <token>" → token; anything else → null. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m ? m[1] : null;
}
