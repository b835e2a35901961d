// Public CA documents next to the admin API: /ca/crl.pem (the current CRL, as the CA regenerates
// it: debounced, not per revocation) and /ca/ca.pem. Public like any CRL distribution point.
import type { ServerResponse } from "node:http";
import type { Route } from "../server/routes.ts";
import { CaUnavailableError } from "../adapters/ca/types.ts";

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

// (Not routes.ts's sendText: importing values from there would make an import cycle.)
function sendText(res: ServerResponse, status: number, text: string, contentType = "text/plain; charset=utf-8"): void {
  const buf = Buffer.from(text);
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length) });
  res.end(buf);
}
