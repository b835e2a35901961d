// The robots area's routes on the robot API (src/peers/robot-api.ts): a robot reads its current
// certificate and reports its signed manifest. Everything is keyed by the authenticated identity; no
// route takes a robot or team id from the request.
import type { RobotRoute } from "../peers/robot-api.ts";
import { readCertificate } from "./certificate.ts";
import { verifyManifest } from "./manifest.ts";

export const MANIFEST_MAX_BYTES = 256 * 1024;

/** What gk_private.robot_manifest_accepted returns: the stored manifest and each ECU's verdict. */
interface AcceptedManifest {
  id: string;
  received_at: string;
  ecus: {
    serial: string;
    verdict: "matches" | "pending" | "discrepancy";
    detail: string;
    expected: string | null;
    rollout_id: string | null;
    event: string | null;
  }[];
}

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
      // Recorded only once every signature verified (src/robots/manifest.ts), then checked against
      // replay and compared with the director's targets in one transaction
      // (gk_private.robot_manifest_accepted, sql/640_robots_api.sql).
      const verdict = await verifyManifest(db, robot.robotId, body);
      if (!verdict.ok) return { status: verdict.status, body: { error: verdict.error } };
      try {
        const { rows } = await db.query<{ accepted: AcceptedManifest | null }>(
          "select gk_private.robot_manifest_accepted($1, $2, $3, $4) as accepted",
          [robot.robotId, robot.teamId, body, JSON.stringify(verdict.reports)],
        );
        const accepted = rows[0]?.accepted;
        if (!accepted) return { status: 404, body: { error: "robot not found" } };
        return { status: 201, body: { ...accepted, received_at: new Date(accepted.received_at).toISOString(), valid: true } };
      } catch (e) {
        // Replayed (an older or repeated report): 409; a report time off the clock, an ECU that
        // is not this robot's: 422. Nothing was recorded (one statement).
        const code = (e as { code?: string }).code;
        if (code === "55000") return { status: 409, body: { error: (e as Error).message } };
        if (code === "22023" || code === "P0002") return { status: 422, body: { error: (e as Error).message } };
        throw e;
      }
    },
  },
];
