// A transaction on one of the worker's pooled connections (helpers.query autocommits each call).
import type { JobHelpers } from "graphile-worker";
import type { PoolClient } from "pg";

export async function inJobTransaction<T>(helpers: JobHelpers, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return helpers.withPgClient(async (c) => {
    await c.query("begin");
    try {
      const r = await fn(c);
      await c.query("commit");
      return r;
    } catch (e) {
      await c.query("rollback").catch(() => {});
      throw e;
    }
  });
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? `${e.name === "Error" ? "" : `${e.name}: `}${e.message}` : String(e);
}
