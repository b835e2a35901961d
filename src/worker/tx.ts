// A transaction on one of the worker's pooled connections (helpers.query autocommits each call).
import type { JobHelpers } from "graphile-worker";
import type { PoolClient } from "pg";
import { transaction } from "../db/pool.ts";

export async function inJobTransaction<T>(helpers: JobHelpers, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return helpers.withPgClient((c) => transaction(c, fn));
}
