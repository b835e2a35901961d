// The services of a real process (worker, start), built from the environment.
import type { Logger } from "pino";
import type pg from "pg";
import { blobsFromEnv } from "./adapters/blobs/from-config.ts";
import { caFromEnv } from "./adapters/ca/from-config.ts";
import { secretBoxFromEnv } from "./lib/secrets.ts";
import { ControllerIdentity } from "./peers/controller.ts";
import type { Services } from "./services.ts";

/** `pool`: the local CA keeps its state in the database (without it there is no local CA). */
export async function servicesFromEnv(
  log: Logger,
  home: string,
  env: NodeJS.ProcessEnv = process.env,
  deps: { pool?: pg.Pool } = {},
): Promise<Services> {
  const ca = await caFromEnv(env, home, deps);
  const secrets = secretBoxFromEnv(env, home);
  const controller = deps.pool && ca ? new ControllerIdentity(deps.pool, secrets, () => ca.caCertificatePem()) : undefined;
  return { log, ca, blobs: await blobsFromEnv(env, home), secrets, ...(controller ? { controller } : {}) };
}
