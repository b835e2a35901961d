// The one list of areas. Adding an area = one import and one entry here; everything the area
// brings (routes, metrics, status sections, CLI commands) is read from its manifest.
import type { AreaManifest } from "./area.ts";
import { collectors as platformCollectors, type MetricCollector } from "./server/metrics.ts";
import type { Route } from "./server/routes.ts";
import bin from "./bin/index.ts";
import certificates from "./certificates/index.ts";
import exports from "./exports/index.ts";
import robots from "./robots/index.ts";
import rollouts from "./rollouts/index.ts";
import sagas from "./sagas/index.ts";
import tuf from "./tuf/index.ts";
import volumes from "./volumes/index.ts";

export const areas: readonly AreaManifest[] = [bin, sagas, certificates, tuf, volumes, exports, robots, rollouts];

export const areaRoutes = areas.flatMap((a) => a.routes ?? []);
export const areaMetrics = areas.flatMap((a) => a.metrics ?? []);
export const areaStatusSections = areas.flatMap((a) => a.statusSections ?? []);
export const areaCommands = areas.flatMap((a) => a.commands ?? []);
export const areaPeerRoutes = areas.flatMap((a) => a.peerRoutes ?? []);
export const areaRobotRoutes = areas.flatMap((a) => a.robotRoutes ?? []);
export const areaAgentRoles = areas.flatMap((a) => a.agentRoles ?? []);

/** What the admin server serves besides GraphQL: the areas' routes, and every metric collector. */
export function areaServerParts(): { routes: Route[]; collectors: MetricCollector[] } {
  return { routes: areaRoutes, collectors: [...platformCollectors, ...areaMetrics] };
}
