// One-time downloads of CA-generated private keys (admin token only):
//   GET /certificates/<id>/key.pem                → the PKCS#8 PEM; afterwards 410 Gone
//   GET /provisioning-credentials/<id>/bundle     → both certificates with their keys and the CA
//                                                   certificate as JSON; afterwards 410 Gone
import type { IncomingMessage, ServerResponse } from "node:http";
import { CaUnavailableError } from "../adapters/ca/types.ts";
import type { Route, RouteContext } from "../server/routes.ts";
import { takeCertificateKey, takeCredentialBundle } from "./parked-keys.ts";

const KEY_PATH = /^\/certificates\/([^/]+)\/key\.pem$/;
const BUNDLE_PATH = /^\/provisioning-credentials\/([^/]+)\/bundle$/;

/** Common checks: the reason to refuse the request, or null when it may go on. */
function refusal(req: IncomingMessage, ctx: RouteContext, match: RegExpExecArray | null): [number, string] | null {
  if (!match) return [404, `not found: ${ctx.path}`];
  if (req.method !== "GET") return [405, "use GET"];
  if (ctx.role !== "gk_admin") return [403, "private keys are for admin tokens only"];
  if (!ctx.services.secrets) return [503, "no SecretBox (master key) is configured in this process"];
  return null;
}

function admitted(req: IncomingMessage, res: ServerResponse, ctx: RouteContext, match: RegExpExecArray | null): match is RegExpExecArray {
  const no = refusal(req, ctx, match);
  if (no) sendError(res, no[0], no[1], no[0] === 405 ? { Allow: "GET" } : {});
  return no === null;
}

export const certificateKeyRoute: Route = {
  prefix: "/certificates/",
  auth: true,
  async handle(req, res, ctx) {
    const m = KEY_PATH.exec(ctx.path);
    if (!admitted(req, res, ctx, m)) return;
    const r = await takeCertificateKey(ctx.db, ctx.services.secrets!, decodeURIComponent(m[1]));
    if (r.status !== 200) return sendError(res, r.status, r.error);
    ctx.log.info({ certificate: m[1] }, "private key downloaded (and deleted)");
    const buf = Buffer.from(r.body);
    res.writeHead(200, { "Content-Type": "application/x-pem-file", "Content-Length": String(buf.length), "Cache-Control": "no-store" });
    res.end(buf);
  },
};

export const credentialBundleRoute: Route = {
  prefix: "/provisioning-credentials/",
  auth: true,
  async handle(req, res, ctx) {
    const m = BUNDLE_PATH.exec(ctx.path);
    if (!admitted(req, res, ctx, m)) return;
    const ca = ctx.services.ca;
    if (!ca) return sendError(res, 503, "no certificate authority is configured in this process");
    // Before taking the keys: a CA outage must not consume them.
    let caPem: string;
    try {
      caPem = await ca.caCertificatePem();
    } catch (e) {
      if (e instanceof CaUnavailableError) return sendError(res, 503, e.message);
      throw e;
    }
    const r = await takeCredentialBundle(ctx.db, ctx.services.secrets!, decodeURIComponent(m[1]), caPem);
    if (r.status !== 200) return sendError(res, r.status, r.error);
    ctx.log.info({ provisioningCredential: m[1] }, "provisioning credential bundle downloaded (keys deleted)");
    sendJson(res, 200, r.body, { "Cache-Control": "no-store" });
  },
};

// (Not routes.ts's helpers: importing values from there would make an import cycle.)
function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(buf.length), ...headers });
  res.end(buf);
}

function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ message }] }, headers);
}
