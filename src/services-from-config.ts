// The services of a real process (worker, start), built from the environment.
import type { Logger } from "pino";
import { blobsFromEnv } from "./adapters/blobs/from-config.ts";
import { caFromEnv } from "./adapters/ca/from-config.ts";
import type { Services } from "./services.ts";

export async function servicesFromEnv(log: Logger, home: string, env: NodeJS.ProcessEnv = process.env): Promise<Services> {
  return { log, ca: await caFromEnv(env, home), blobs: await blobsFromEnv(env, home) };
}
