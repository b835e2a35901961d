// Read-only HTTP access to a team's published repository, straight from the blob store:
//   GET /tuf/<team>/metadata/<file>   (N.role.json, timestamp.json)
//   GET /tuf/<team>/targets/<path>    (target files the platform stored under the team's prefix)
//   GET /tuf/<team>/targets/<dir>/<hash>.<name>   (the same file, as consistent snapshots name it)
// Public like any TUF mirror (no token): clients trust signatures, not the transport. A missing
// file is a 404, which is how TUF clients learn that no newer root exists.
import type http from "node:http";
import type pg from "pg";
import type { BlobStore } from "../adapters/blobs/types.ts";
import { sendText } from "../server/http.ts";
import type { Route } from "../server/routes.ts";
import { metadataKey, targetKey } from "./layout.ts";

export const TUF_ROUTE_PREFIX = "/tuf/";

export interface TufHttpDeps {
  pool: pg.Pool;
  blobs: BlobStore;
}

export const tufRoute: Route = {
  prefix: TUF_ROUTE_PREFIX,
  auth: false,
  async handle(req, res, ctx) {
    const blobs = ctx.services.blobs;
    if (!blobs) return sendText(res, 503, "no blob store configured\n");
    const handled = await handleTufRequest(req, res, { pool: ctx.db, blobs });
    if (!handled) sendText(res, 404, "not found\n");
  },
};

/** Handles a request under /tuf/; returns false when the path is not ours. */
export async function handleTufRequest(req: http.IncomingMessage, res: http.ServerResponse, deps: TufHttpDeps): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (!url.pathname.startsWith(TUF_ROUTE_PREFIX)) return false;
  if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
  let parts: string[];
  try {
    parts = url.pathname.slice(TUF_ROUTE_PREFIX.length).split("/").map(decodeURIComponent);
  } catch {
    return send(res, 400, "bad path\n");
  }
  const [team, kind, ...rest] = parts;
  const file = rest.join("/");
  const badSegment = (p: string) => p === "" || p === "." || p === ".." || /[/\\\0]/.test(p);
  // No target path is longer than 1,024 bytes (tuf_targets), and no blob key may be either.
  if (
    !team ||
    badSegment(team) ||
    (kind !== "metadata" && kind !== "targets") ||
    !file ||
    rest.some(badSegment) ||
    Buffer.byteLength(file) > 1024
  ) {
    return send(res, 404, "not found\n");
  }
  if (kind === "metadata" && rest.length !== 1) return send(res, 404, "not found\n");
  const { rows } = await deps.pool.query(
    "select p.team_id from gk_public.tuf_repositories p join gk_public.teams t on t.id = p.team_id where t.name = $1",
    [team],
  );
  if (!rows[0]) return send(res, 404, "no such repository\n");
  const key = kind === "metadata" ? metadataKey(rows[0].team_id, file) : await targetBlobKey(deps.pool, rows[0].team_id, rest);
  const body = await deps.blobs.get(key);
  if (!body) return send(res, 404, "not found\n");
  const headers: Record<string, string> = {
    "content-type": kind === "metadata" ? "application/json" : "application/octet-stream",
    "content-length": String(body.byteLength),
    // Versioned files never change; timestamp.json does.
    "cache-control": kind === "metadata" && file !== "timestamp.json" ? "public, max-age=31536000, immutable" : "no-cache",
  };
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}

// Root says consistent_snapshot, so clients (python-tuf, tuf-js by default) ask for a target as
// <dir>/<hash>.<name> with one of the hashes its bin lists. The file is stored once, under its
// path; the hashed name maps to it when that hash is one the target lists now.
const HASHED_NAME = /^([0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})\.(.+)$/;

async function targetBlobKey(pool: pg.Pool, teamId: string, segments: string[]): Promise<string> {
  const m = HASHED_NAME.exec(segments[segments.length - 1]!);
  if (m) {
    const path = [...segments.slice(0, -1), m[2]].join("/");
    const { rowCount } = await pool.query(
      `select 1 from gk_public.tuf_targets t cross join lateral jsonb_each_text(t.hashes) h
        where t.team_id = $1 and t.path = $2 and h.value = $3`,
      [teamId, path, m[1]],
    );
    if (rowCount) return targetKey(teamId, path);
  }
  return targetKey(teamId, segments.join("/"));
}

function send(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): true {
  sendText(res, status, text, "text/plain; charset=utf-8", headers);
  return true;
}
