// Build workers and volume garbage collection: the model is sql/500_workers.sql and
// sql/501_volumes.sql; the collector src/volumes/collect.ts (tasks/volumes__collect.ts); the
// agent's volumes role src/volumes/agent-role.ts over src/volumes/store.ts.
import { defineArea } from "../area.ts";
import { volumesRole } from "./agent-role.ts";
import { registerWorkersCommand } from "./cli.ts";
import { volumesPeerRoutes } from "./gateway-routes.ts";
import { volumesMetrics } from "./metrics.ts";
import { volumesSection } from "./status.ts";

export default defineArea({
  key: "volumes",
  metrics: [volumesMetrics],
  statusSections: [volumesSection],
  commands: [registerWorkersCommand],
  peerRoutes: volumesPeerRoutes,
  agentRoles: [volumesRole()],
});
