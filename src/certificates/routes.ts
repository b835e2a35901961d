// HTTP routes of the certificates area.
//  Public CA documents (like any CRL distribution point): /ca/crl.pem (the current CRL, as the
//  CA regenerates it: debounced, not per revocation) and /ca/ca.pem.
//  One-time downloads of CA-generated private keys (admin token only):
//   GET /certificates/<id>/key.pem                → the PKCS#8 PEM; afterwards 410 Gone
//   GET /provisioning-credentials/<id>/bundle     → both certificates with their keys and the CA
//                                                   certificate as JSON; afterwards 410 Gone
import type { IncomingMessage, ServerResponse } from "node:http";
import { CaUnavailableError } from "../adapters/ca/types.ts";
import { sendError, sendJson, sendText } from "../server/http.ts";
import type { Route, RouteContext } from "../server/routes.ts";
import { takeCertificateKey, takeCredentialBundle } from "./parked-keys.ts";

export const caRoute: Route = {
  prefix: "/ca/",
  auth: false,
  async handle(_req, res, { services, path }) {
    const ca = services.ca;
    if (!ca) return sendText(res, 503, "no certificate authority is configured in this process\n");
    try {
      if (path === "/ca/crl.pem") return sendText(res, 200, await ca.crlPem(), "application/x-pem-file");
      if (path === "/ca/ca.pem") return sendText(res, 200, await ca.caCertificatePem(), "application/x-pem-file");
      return sendText(res, 404, "not found: try /ca/crl.pem or /ca/ca.pem\n");
    } catch (e) {
      return sendText(res, e instanceof CaUnavailableError ? 503 : 500, `${(e as Error).message}\n`);
    }
  },
};

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
    const id = decodeURIComponent(m[1]);
    const r = await takeCertificateKey(ctx.db, ctx.services.secrets!, id);
    await ctx.audit?.("GET /certificates/{id}/key.pem", { id }, r.status === 200 ? null : r.error);
    if (r.status !== 200) return sendError(res, r.status, r.error);
    ctx.log.info({ certificate: m[1] }, "private key downloaded (and deleted)");
    sendText(res, 200, r.body, "application/x-pem-file", { "Cache-Control": "no-store" });
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
    const id = decodeURIComponent(m[1]);
    const r = await takeCredentialBundle(ctx.db, ctx.services.secrets!, id, caPem);
    await ctx.audit?.("GET /provisioning-credentials/{id}/bundle", { id }, r.status === 200 ? null : r.error);
    if (r.status !== 200) return sendError(res, r.status, r.error);
    ctx.log.info({ provisioningCredential: m[1] }, "provisioning credential bundle downloaded (keys deleted)");
    sendJson(res, 200, r.body, { "Cache-Control": "no-store" });
  },
};

export const certificateRoutes: Route[] = [caRoute, certificateKeyRoute, credentialBundleRoute];
