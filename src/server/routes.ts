// The shape of an HTTP route served next to the admin API. Areas declare theirs in their
// manifest (src/<area>/index.ts); src/areas.ts collects them and the server matches by prefix.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type pg from "pg";
import type { Services } from "../services.ts";
import type { TokenIdentity } from "./tokens.ts";

export interface RouteContext {
  db: pg.Pool;
  services: Services;
  log: Logger;
  /** Path without the query string, as sent (percent-encoded), e.g. "/tuf/acme/timestamp.json". */
  path: string;
  url: URL;
  /**
   * The path's segments, percent-decoded. The server has already refused (400) paths with
   * malformed encoding or control characters, so decoding again in a route cannot fail either.
   */
  segments: string[];
  /** The database role of the request's token (gk_admin, gk_viewer) on routes with `auth`. */
  role?: string;
  /** Who sent the request (token id and name, never the secret) on routes with `auth`. */
  token?: TokenIdentity;
  /**
   * On routes with `auth`: records a state-changing request (e.g. a one-time key download) in the
   * admin API's audit log, like a GraphQL mutation. `error` null = it succeeded.
   */
  audit?(operation: string, args: Record<string, unknown>, error: string | null): Promise<void>;
}

export interface Route {
  /** Requests whose path starts with this prefix (e.g. "/tuf/") go to `handle`. */
  prefix: string;
  /** Whether the route requires a valid bearer token (like /graphql). */
  auth?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void>;
}
