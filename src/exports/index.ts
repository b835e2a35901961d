// Exports: one live export per read-only resource (published images) on an in-service export
// node. Model and transitions: sql/700_exports.sql (bin kind sql/710_exports_bin.sql); the
// coordinator src/exports/coordinate.ts (tasks/exports__coordinate.ts) and its sagas
// src/exports/sagas/; the export node is the agent's exports role, src/exports/agent-role.ts;
// robots ask the robot API where to fetch an image, src/exports/robot-routes.ts.
import { defineArea } from "../area.ts";
import { exportsRole } from "./agent-role.ts";
import { exportsPeerRoutes } from "./gateway-routes.ts";
import { exportsMetrics } from "./metrics.ts";
import { exportsRobotRoutes } from "./robot-routes.ts";
import { exportsSection } from "./status.ts";

export default defineArea({
  key: "exports",
  metrics: [exportsMetrics],
  statusSections: [exportsSection],
  peerRoutes: exportsPeerRoutes,
  robotRoutes: exportsRobotRoutes,
  agentRoles: [exportsRole()],
});
