// Rollouts and each robot's Uptane director metadata, regenerated lazily (dirty flags with
// generations; docs/rollouts.md). Robots read their director and report ECU events through the
// robot API.
import { defineArea } from "../area.ts";
import { rolloutsRobotRoutes } from "./robot-routes.ts";

export default defineArea({
  key: "rollouts",
  robotRoutes: rolloutsRobotRoutes,
});
