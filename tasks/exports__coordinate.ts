// The export coordinator (src/exports/coordinate.ts): every 30 seconds (the crontab's minute,
// and each activation asks for the next one 30 s later) and on demand (activateReconciler,
// expungeExportNode, requestExport).
import { CoordinateLimits, CoordinateStatus, coordinate } from "../src/exports/coordinate.ts";
import { defineReconciler } from "../src/worker/reconciler.ts";

export default defineReconciler({
  name: "exports__coordinate",
  schedule: "* * * * *",
  description:
    "Gives every published image one live export on an in-service export node: requests, creates and deletes exports through their sagas, re-homes those of expunged nodes.",
  limits: CoordinateLimits,
  status: CoordinateStatus,
  async run({ services, helpers, limits, itemError, again }) {
    let more = false;
    const status = await coordinate({
      query: (sql, params) => helpers.query(sql, params),
      withPgClient: (fn) => helpers.withPgClient(fn),
      services,
      limits,
      itemError,
      more: () => {
        more = true;
      },
    });
    // Work left past the limits: the next activation now (its sagas keep the nodes busy meanwhile).
    again(more ? 0 : 30);
    return status;
  },
});
