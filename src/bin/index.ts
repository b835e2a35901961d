// The bin: every pending deletion of every area in one place, with its age and last error.
import { defineArea } from "../area.ts";
import { binMetrics } from "./metrics.ts";
import { binSection } from "./status.ts";

export default defineArea({
  key: "bin",
  metrics: [binMetrics],
  statusSections: [binSection],
});
