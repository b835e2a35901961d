// One VolumeAgents per process (per services object): its clients keep their sockets between jobs.
import { requireService, type Services } from "../services.ts";
import { VolumeAgents } from "./agents.ts";

const byServices = new WeakMap<Services, VolumeAgents>();

/** Per-agent parallelism and call deadline: GK_VOLUMES_PARALLELISM, GK_VOLUMES_CALL_TIMEOUT_MS. */
export function volumeAgents(services: Services, env: NodeJS.ProcessEnv = process.env): VolumeAgents {
  let a = byServices.get(services);
  if (!a) {
    a = new VolumeAgents(requireService(services, "controller"), {
      parallelism: Number(env.GK_VOLUMES_PARALLELISM ?? 4),
      timeoutMs: Number(env.GK_VOLUMES_CALL_TIMEOUT_MS ?? 10_000),
    });
    byServices.set(services, a);
  }
  return a;
}
