// The services of a real process (worker, start), built from the environment.
import type { Logger } from "pino";
import type pg from "pg";
import { blobsFromEnv } from "./adapters/blobs/from-config.ts";
import { caFromEnv } from "./adapters/ca/from-config.ts";
import { secretBoxFromEnv } from "./lib/secrets.ts";
import type { Services } from "./services.ts";

/** `pool`: the local CA keeps its state in the database (without it there is no local CA). */
export async function servicesFromEnv(
  log: Logger,
  home: string,
  env: NodeJS.ProcessEnv = process.env,
  deps: { pool?: pg.Pool } = {},
): Promise<Services> {
  return { log, ca: await caFromEnv(env, home, deps), blobs: await blobsFromEnv(env, home), secrets: secretBoxFromEnv(env, home) };
}
