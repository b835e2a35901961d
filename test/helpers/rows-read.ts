// Rows a connection's statements read, per table, counted by the backend itself: the counters of
// pg_stat_get_xact_tuples_returned / _fetched of a table and its indexes hold what the backend
// has not reported yet, and a backend reports only between transactions, so inside one
// transaction the difference of two readings is exactly what the statements between them read
// (sequential scans, index entries, heap fetches). A count, not a time: the read-cost tests
// (test/rollouts/read-cost.test.ts, test/robots/read-cost.test.ts) use it to show that a robot's
// statements read the rows of that robot, not of the fleet.
import type { PoolClient } from "pg";

const ROWS_READ = `select coalesce(sum(pg_stat_get_xact_tuples_returned(c.oid) + pg_stat_get_xact_tuples_fetched(c.oid)), 0)::int as n
   from pg_class c
  where c.oid = $1::regclass or c.oid in (select indexrelid from pg_index where indrelid = $1::regclass)`;

/** The backend's counts of rows read from each table so far (valid for differences inside one transaction). */
export async function rowsRead(c: PoolClient, tables: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) out[t] = (await c.query(ROWS_READ, [t])).rows[0].n;
  return out;
}

/** The rows `work` read from each table, on `c`, inside the transaction `c` is in. */
export async function rowsReadBy(c: PoolClient, tables: readonly string[], work: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await rowsRead(c, tables);
  await work();
  const after = await rowsRead(c, tables);
  return Object.fromEntries(tables.map((t) => [t, after[t] - before[t]]));
}
