// Sagas in progress, for operators: a platform area (the engine is src/worker/saga.ts, the
// tables migrations/0071_sagas.sql, the stored logic sql/040_sagas.sql). Each saga belongs to
// the area that defines it (src/<area>/sagas/<name>.ts, driven by tasks/<name>.ts).
import { defineArea } from "../area.ts";
import { sagaMetrics } from "./metrics.ts";
import { sagasSection } from "./status.ts";

export default defineArea({
  key: "sagas",
  metrics: [sagaMetrics],
  statusSections: [sagasSection],
});
