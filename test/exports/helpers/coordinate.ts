// One activation of the export coordinator run directly on the test's pool, the way its task
// runs it (no activation row recorded); an item error fails the test. `more` says whether it
// asked for the next activation at once; `queries`, when given, collects every statement it sent.
import { CoordinateLimits, type CoordinateStatus, coordinate } from "../../../src/exports/coordinate.ts";
import type { Services } from "../../../src/services.ts";
import type { TestDb } from "../../helpers/db.ts";

export async function coordinateOnce(
  db: TestDb,
  services: Services,
  limits: Partial<CoordinateLimits> = {},
  queries?: string[],
): Promise<CoordinateStatus & { more: boolean }> {
  let more = false;
  const status = await coordinate({
    query: (sql, params) => {
      queries?.push(sql);
      return db.pool.query(sql, params);
    },
    withPgClient: async (fn) => {
      const c = await db.pool.connect();
      try {
        return await fn(c);
      } finally {
        c.release();
      }
    },
    services,
    limits: CoordinateLimits.parse(limits),
    itemError: async (item, e) => {
      throw new Error(`${item}: ${e}`);
    },
    more: () => {
      more = true;
    },
  });
  return { ...status, more };
}
