// GET /tuf/<team>/metadata/<file> and /tuf/<team>/targets/<path>: a team's published TUF
// repository, read-only from the blob store. Public like any TUF mirror (no token): clients
// trust signatures, not the transport.
import { requireService } from "../services.ts";
import { handleTufRequest, TUF_ROUTE_PREFIX } from "../tuf/http.ts";
import { sendText, type Route } from "./routes.ts";

export const tufRoute: Route = {
  prefix: TUF_ROUTE_PREFIX,
  auth: false,
  async handle(req, res, ctx) {
    const blobs = ctx.services.blobs;
    if (!blobs) return sendText(res, 503, "no blob store configured\n");
    const handled = await handleTufRequest(req, res, { pool: ctx.db, blobs: requireService(ctx.services, "blobs") });
    if (!handled) sendText(res, 404, "not found\n");
  },
};
