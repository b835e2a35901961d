// The robots area's routes on the robot API (src/peers/robot-api.ts): a robot reads its current
// certificate and reports its signed manifest. Everything is keyed by the authenticated identity; no
// route takes a robot or team id from the request.
import type { RobotRoute } from "../peers/robot-api.ts";
import { readCertificate } from "./certificate.ts";
import { verifyManifest } from "./manifest.ts";

export const MANIFEST_MAX_BYTES = 256 * 1024;

export const robotsRobotRoutes: RobotRoute[] = [
  {
    method: "GET",
    path: /^\/robot\/v1\/certificate$/,
    handle: async ({ robot, db, services, signal }) => readCertificate(db, services, robot, signal),
  },
  {
    method: "POST",
    path: /^\/robot\/v1\/manifest$/,
    maxBodyBytes: MANIFEST_MAX_BYTES,
    handle: async ({ robot, body, db }) => {
      if (body === null || typeof body !== "object" || Array.isArray(body)) {
        return { status: 400, body: { error: "the manifest must be a JSON object" } };
      }
      // Recorded only once every signature verified (src/robots/manifest.ts).
      const verdict = await verifyManifest(db, robot.robotId, body);
      if (!verdict.ok) return { status: verdict.status, body: { error: verdict.error } };
      const { rows } = await db.query<{ id: string; received_at: Date }>(
        "select id, received_at from gk_private.robot_manifest_received($1, $2, true, $3)",
        [robot.robotId, robot.teamId, body],
      );
      if (!rows[0]) return { status: 404, body: { error: "robot not found" } };
      return { status: 201, body: { id: String(rows[0].id), received_at: rows[0].received_at.toISOString(), valid: true } };
    },
  },
];
