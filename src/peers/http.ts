// JSON in and out for both ends of the peer protocol (the agent's server and Groundskeeper's
// gateway): bounded bodies, one error type carrying the HTTP status.
import type http from "node:http";
import { sendJson } from "../server/http.ts";

export class PeerRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function sendPeerJson(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) res.writeHead(status, { "Content-Length": "0" }).end();
  else sendJson(res, status, body);
}

/** The request's JSON body (undefined when empty); over `max` bytes → 413, not JSON → 400. */
export async function readJsonBody(req: http.IncomingMessage, max: number): Promise<unknown> {
  if (Number(req.headers["content-length"] ?? 0) > max) throw new PeerRequestError(413, `body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new PeerRequestError(413, `body over ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new PeerRequestError(400, "body is not JSON");
  }
}
