// What an area brings to the platform. Each area exports one manifest from src/<area>/index.ts;
// src/areas.ts lists them, and the framework (server, CLI, worker) reads only that list.
import type { Command } from "commander";
import type { AgentRole } from "./peers/agent/role.ts";
import type { PeerRoute } from "./peers/gateway.ts";
import type { RobotRoute } from "./peers/robot-api.ts";
import type { StatusSection } from "./cli/status/sections.ts";
import type { MetricCollector } from "./server/metrics.ts";
import type { Route } from "./server/routes.ts";

export interface AreaManifest {
  /** The area key: the same in sql/, migrations/, tasks/, src/, test/, docs/ and bench/. */
  key: string;
  /** HTTP routes served next to the admin API. */
  routes?: Route[];
  /** Prometheus collectors run at every scrape of /metrics. */
  metrics?: MetricCollector[];
  /** Sections of `groundskeeper status`, in display order. */
  statusSections?: StatusSection<any>[];
  /** CLI commands: each registers itself with `program.command(...)`. */
  commands?: ((program: Command) => void)[];
  /** Routes of the peer gateway (mutual TLS) that agents of this area call: register, heartbeat. */
  peerRoutes?: PeerRoute[];
  /** Routes of the robot API (mutual TLS with robot certificates): each handler gets the
   * authenticated robot {robotId, teamId, certificateId}. */
  robotRoutes?: RobotRoute[];
  /** Roles this area adds to the agent program (`groundskeeper agent --roles …`). */
  agentRoles?: AgentRole[];
}

export function defineArea(manifest: AreaManifest): AreaManifest {
  return manifest;
}
