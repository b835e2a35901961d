// A TUF repository per team: hashed bins, publishing, resigning, root rotation, read-only serving.
import { defineArea } from "../area.ts";
import registerTufCommand from "./cli.ts";
import { tufExpiryMetrics } from "./metrics.ts";
import { tufRoute } from "./routes.ts";
import { tufSection } from "./status.ts";

export default defineArea({
  key: "tuf",
  routes: [tufRoute],
  metrics: [tufExpiryMetrics],
  statusSections: [tufSection],
  commands: [registerTufCommand],
});
