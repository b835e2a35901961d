// Certificate lifecycle: issuance, revocation at the CA, expiry, one-time key downloads.
import { defineArea } from "../area.ts";
import { crlMetrics } from "./metrics.ts";
import { certificateRoutes } from "./routes.ts";

export default defineArea({
  key: "certificates",
  routes: certificateRoutes,
  metrics: [crlMetrics],
});
