// Response helpers for every HTTP route (the admin server's own and the areas'): one place that
// sets Content-Type and Content-Length, and the `{ errors: [{ message }] }` shape GraphQL uses.
import type { ServerResponse } from "node:http";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(buf.length), ...headers });
  res.end(buf);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType = "text/plain; charset=utf-8",
  headers: Record<string, string> = {},
): void {
  const buf = Buffer.from(text);
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length), ...headers });
  res.end(buf);
}

/** An error in the shape GraphQL clients already parse: `{ errors: [{ message }] }`. */
export function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ message }] }, headers);
}
