// How TUF functions get a connection: from a pool (CLI, tests) or a job's helpers (tasks).
import type pg from "pg";

export type WithClient = <T>(fn: (c: pg.ClientBase) => Promise<T>) => Promise<T>;

export function fromPool(pool: pg.Pool): WithClient {
  return async (fn) => {
    const c = await pool.connect();
    try {
      return await fn(c);
    } finally {
      c.release();
    }
  };
}

export async function transaction<T>(c: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await c.query("begin");
  try {
    const r = await fn();
    await c.query("commit");
    return r;
  } catch (e) {
    await c.query("rollback").catch(() => {});
    throw e;
  }
}
