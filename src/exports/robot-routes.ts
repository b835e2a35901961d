// The exports area's route on the robot API (src/peers/robot-api.ts): a robot asks where to fetch
// an image of its own team and gets the live export's URL on its node with a capability for that
// attachment only — signed with the controller certificate's key, naming the node, the robot's
// certificate serial and an expiry (src/peers/capability.ts) — which the node checks without a
// database. The team comes from the authenticated identity: another team's image is a 404.
import { loadConfig } from "../config.ts";
import { signCapability } from "../peers/capability.ts";
import type { RobotRoute } from "../peers/robot-api.ts";
import { requireService } from "../services.ts";
import { exportCapabilityResource } from "./agent-role.ts";
import { ATTACHMENT_ID } from "./attachments.ts";

/**
 * GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS: a capability's life (default 300 s, 10 s to 1 h; nodes
 * refuse longer). Validated with the rest of the configuration when the process starts
 * (src/config.ts), so a malformed value never reaches a robot's request.
 */
export function fetchTokenTtlSeconds(env: NodeJS.ProcessEnv = process.env): number {
  return loadConfig(env).GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS;
}

interface FetchRow {
  image_id: string;
  sha256: string;
  length: string;
  attachment_id: string | null;
  url: string | null;
  node_worker_id: string | null;
  node_fresh: boolean | null;
}

export const exportsRobotRoutes: RobotRoute[] = [
  {
    method: "GET",
    path: /^\/robot\/v1\/images\/([^/]{1,64})\/export$/,
    handle: async ({ robot, params, db, services }) => {
      const id = params[0]!;
      if (!ATTACHMENT_ID.test(id)) return { status: 400, body: { error: "the image id must be a lower-case UUID" } };
      const { rows } = await db.query<FetchRow>("select * from gk_private.export_robot_fetch($1, $2)", [robot.teamId, id]);
      const r = rows[0];
      if (!r) return { status: 404, body: { error: `no image ${id} in this robot's team` } };
      if (!r.url || !r.attachment_id || !r.node_worker_id)
        return {
          status: 503,
          headers: { "Retry-After": "5" },
          body: { error: `image ${id} has no live export yet: try again shortly` },
        };
      // Its node stopped heartbeating: the robot is not sent there (the coordinator re-homes the
      // export once the node is expunged; the node may also come back).
      if (!r.node_fresh)
        return {
          status: 503,
          headers: { "Retry-After": "5" },
          body: { error: `the export node of image ${id} is not answering: try again shortly` },
        };
      const creds = await requireService(services, "controller").current();
      if (!creds) return { status: 503, headers: { "Retry-After": "5" }, body: { error: "the controller certificate is not issued yet" } };
      const { token, expiresAt } = signCapability(creds, {
        aud: r.node_worker_id,
        sub: robot.serial,
        res: exportCapabilityResource(r.attachment_id),
        ttlSeconds: fetchTokenTtlSeconds(),
      });
      return {
        status: 200,
        body: {
          image_id: r.image_id,
          sha256: r.sha256,
          length: Number(r.length),
          url: r.url,
          // The node presents a worker certificate of Groundskeeper's CA with this CN.
          node: { worker_id: r.node_worker_id },
          token,
          expires_at: expiresAt.toISOString(),
        },
      };
    },
  },
];
