// The services of a real process (worker, serve, start), built from the environment.
import type { Logger } from "pino";
import type pg from "pg";
import { blobsFromEnv } from "./adapters/blobs/from-config.ts";
import { caFromEnv } from "./adapters/ca/from-config.ts";
import type { SecretBox } from "./lib/secrets.ts";
import { ControllerIdentity } from "./peers/controller.ts";
import type { Services } from "./services.ts";

/**
 * `pool`: the local CA keeps its state in the database (without one there is no local CA).
 * `secrets`: the process's SecretBox under the master key (src/cli/master-key.ts checks it
 * against the database), shared by the local CA and the tasks.
 */
export async function servicesFromEnv(
  log: Logger,
  home: string,
  env: NodeJS.ProcessEnv = process.env,
  deps: { pool?: pg.Pool; secrets?: SecretBox } = {},
): Promise<Services> {
  const ca = await caFromEnv(env, home, deps);
  const secrets = deps.secrets;
  // Groundskeeper's certificate towards agents: needs the CA, the database and the master key.
  const controller = deps.pool && ca && secrets ? new ControllerIdentity(deps.pool, secrets, () => ca.caCertificatePem()) : undefined;
  return {
    log,
    ca,
    blobs: await blobsFromEnv(env, home),
    ...(secrets ? { secrets } : {}),
    ...(controller ? { controller } : {}),
  };
}
