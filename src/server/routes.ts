// Extra HTTP routes served next to the admin API (e.g. read-only TUF metadata under /tuf/).
// To add one, write `{ prefix, handle }` in its own module and append it to `routes` below.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type pg from "pg";
import type { Services } from "../services.ts";
import { caRoute } from "../certs/ca-routes.ts";
import { certificateKeyRoute, credentialBundleRoute } from "../certs/key-routes.ts";
import { tufRoute } from "./tuf-routes.ts";

export interface RouteContext {
  db: pg.Pool;
  services: Services;
  log: Logger;
  /** Path without the query string, e.g. "/tuf/acme/timestamp.json". */
  path: string;
  url: URL;
  /** The database role of the request's token (gk_admin, gk_viewer) on routes with `auth`. */
  role?: string;
}

export interface Route {
  /** Requests whose path starts with this prefix (e.g. "/tuf/") go to `handle`. */
  prefix: string;
  /** Whether the route requires a valid bearer token (like /graphql). */
  auth?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void>;
}

export const routes: Route[] = [caRoute, certificateKeyRoute, credentialBundleRoute, tufRoute];

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(buf.length), ...headers });
  res.end(buf);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = "text/plain; charset=utf-8"): void {
  const buf = Buffer.from(text);
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length) });
  res.end(buf);
}
