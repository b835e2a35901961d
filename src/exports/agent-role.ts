// The exports role of the agent (an export node): attach a blob (fetched from the blob store into
// this node's storage and verified, src/exports/attachments.ts), report an attachment (404 when
// this node does not have it, e.g. after it restarted without its storage), serve its bytes
// read-only at a stable path, detach (a missing attachment is fine). The blob store is the same
// configuration as Groundskeeper's (GK_BLOBS, GK_BLOBS_DIR, GK_S3_*).
import path from "node:path";
import { z } from "zod";
import { blobsFromEnv } from "../adapters/blobs/from-config.ts";
import { UserError } from "../lib/errors.ts";
import { AgentHttpError, type AgentRole, type AgentRoute } from "../peers/agent/role.ts";
import { ATTACHMENT_ID, AttachError, AttachmentStore } from "./attachments.ts";

/** The stable path of an attachment's bytes on its node. */
export function blobPath(attachmentId: string): string {
  return `/v1/exports/${attachmentId}/blob`;
}

/** What a robot's capability for an attachment names (signed by src/exports/robot-routes.ts). */
export function exportCapabilityResource(attachmentId: string): string {
  return `exports/${attachmentId}`;
}

const Id = z.string().regex(ATTACHMENT_ID, "an attachment id (lower-case UUID)");
const AttachBody = z
  .object({
    attachment_id: Id,
    blob_key: z.string().min(1).max(1024),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lower-case hex digits"),
    length: z
      .number()
      .int()
      .min(1)
      .max(2 ** 53 - 1),
  })
  .strict();

/** Most attachments one listing page holds (GET /v1/exports?after=&limit=). */
export const LIST_MAX = 1000;
// The query of a listing: an id to start after, a page size; anything else is refused.
const ListQuery = z
  .object({
    after: Id.optional(),
    limit: z
      .string()
      .regex(/^[1-9][0-9]{0,3}$/, `an integer from 1 to ${LIST_MAX}`)
      .transform(Number)
      .pipe(z.number().max(LIST_MAX, `an integer from 1 to ${LIST_MAX}`))
      .optional(),
  })
  .strict();

const NodeEnv = z.object({
  // Images are at most 64 GiB (gk_public.images.length); blobs are streamed to disk, never held whole.
  GK_EXPORTS_MAX_BLOB_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 53 - 1)
    .default(64 * 2 ** 30),
  // Below the controller's GK_EXPORTS_ATTACH_TIMEOUT_MS (120 s), so the node gives up first.
  GK_EXPORTS_DOWNLOAD_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(24 * 3600_000)
    .default(110_000),
});

/** The node's limits from its environment; a bad value stops the agent with one line. */
export function nodeLimits(env: NodeJS.ProcessEnv): { maxBytes: number; downloadTimeoutMs: number } {
  const r = NodeEnv.safeParse(env);
  if (!r.success)
    throw new UserError(`invalid export node configuration: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return { maxBytes: r.data.GK_EXPORTS_MAX_BLOB_BYTES, downloadTimeoutMs: r.data.GK_EXPORTS_DOWNLOAD_TIMEOUT_MS };
}

/** GK_EXPORTS_MAX_BLOB_BYTES (default 64 GiB), GK_EXPORTS_DOWNLOAD_TIMEOUT_MS (default 110 s): see nodeLimits. */
export function exportsRole(env: NodeJS.ProcessEnv = process.env): AgentRole {
  return {
    name: "exports",
    async start({ dir, log }) {
      const limits = nodeLimits(env);
      const home = path.resolve(env.GROUNDSKEEPER_HOME ?? ".groundskeeper");
      const blobs = await blobsFromEnv(env, home);
      if (!blobs) throw new Error("the exports role needs a blob store (GK_BLOBS)");
      const store = new AttachmentStore(dir, blobs, limits);
      const opened = await store.open();
      if (opened.removedPartial) log.info(opened, "exports: removed partial attachments a crash left behind");

      const routes: AgentRoute[] = [
        {
          method: "POST",
          path: /^\/v1\/exports$/,
          handle: async (req) => {
            const r = AttachBody.safeParse(req.body);
            if (!r.success)
              throw new AgentHttpError(400, r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
            try {
              const { attachment, created } = await store.attach(r.data);
              return { status: created ? 201 : 200, body: { ...attachment, path: blobPath(attachment.attachment_id) } };
            } catch (e) {
              if (e instanceof AttachError) throw new AgentHttpError(e.status, e.message);
              throw e;
            }
          },
        },
        {
          // A page of the attachments in id order, with the node's clock (Groundskeeper's sweep
          // of attachments no record holds measures their age with it, not its own).
          method: "GET",
          path: /^\/v1\/exports$/,
          handle: async (req) => {
            const keys = [...req.query.keys()];
            if (new Set(keys).size !== keys.length) throw new AgentHttpError(400, "query: each parameter at most once");
            const r = ListQuery.safeParse(Object.fromEntries(req.query));
            if (!r.success)
              throw new AgentHttpError(400, r.error.issues.map((i) => `${i.path.join(".") || "query"}: ${i.message}`).join("; "));
            const page = await store.list(r.data.after ?? null, r.data.limit ?? LIST_MAX);
            return { status: 200, body: { now: new Date().toISOString(), ...page } };
          },
        },
        {
          method: "GET",
          path: /^\/v1\/exports\/([0-9a-f-]{36})$/,
          handle: async (req) => {
            const a = await store.get(req.params[0]!);
            return a
              ? { status: 200, body: { ...a, path: blobPath(a.attachment_id) } }
              : { status: 404, body: { error: "no such attachment" } };
          },
        },
        {
          method: "GET",
          path: /^\/v1\/exports\/([0-9a-f-]{36})\/blob$/,
          // Robots fetch with a capability the robot API signed for this attachment (robot-routes.ts).
          capability: ([id]) => exportCapabilityResource(id!),
          handle: async (req) => {
            if (!(await store.get(req.params[0]!))) return { status: 404, body: { error: "no such attachment" } };
            return { status: 200, file: store.blobPath(req.params[0]!) };
          },
        },
        {
          method: "DELETE",
          path: /^\/v1\/exports\/([0-9a-f-]{36})$/,
          handle: async (req) => {
            await store.detach(req.params[0]!);
            return { status: 204 };
          },
        },
      ];
      return { routes, heartbeat: async () => ({ attachments: await store.count() }), stop: async () => {} };
    },
  };
}
