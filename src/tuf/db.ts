// How TUF functions get a connection: from a pool (CLI, tests) or a job's helpers (tasks).
import type pg from "pg";
import { transaction as clientTransaction, withClient } from "../db/pool.ts";

export type WithClient = <T>(fn: (c: pg.ClientBase) => Promise<T>) => Promise<T>;

export function fromPool(pool: pg.Pool): WithClient {
  return (fn) => withClient(pool, fn);
}

export async function transaction<T>(c: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  return clientTransaction(c, () => fn());
}
