// Robots as clients of the robot API: their certificates (read, and regenerated lazily when what
// they encode changes: sql/630_robots_certificates.sql) and their manifests. The listener itself
// is framework (src/peers/robot-api.ts); this area brings its routes.
import { defineArea } from "../area.ts";
import { robotsRobotRoutes } from "./robot-routes.ts";
import { ecuReportsSection } from "./status.ts";

export default defineArea({
  key: "robots",
  robotRoutes: robotsRobotRoutes,
  statusSections: [ecuReportsSection],
});
