// The rollouts area's routes on the robot API (src/peers/robot-api.ts): a robot reads its own
// director metadata (N.root.json, timestamp.json, snapshot.json, targets.json — regenerated first
// when dirty) and reports its ECUs' events. Keyed by the authenticated identity only.
import type { RobotRoute } from "../peers/robot-api.ts";
import { requireService } from "../services.ts";
import { directorFile, postEcuEvents } from "./director-api.ts";

export const EVENTS_MAX_BYTES = 256 * 1024;

export const rolloutsRobotRoutes: RobotRoute[] = [
  {
    method: "GET",
    path: /^\/robot\/v1\/director\/([A-Za-z0-9.]{1,40})$/,
    handle: ({ robot, params, db, services }) => directorFile(db, requireService(services, "secrets"), robot, params[0]),
  },
  {
    method: "POST",
    path: /^\/robot\/v1\/events$/,
    maxBodyBytes: EVENTS_MAX_BYTES,
    handle: ({ robot, body, db }) => postEcuEvents(db, robot, body),
  },
];
