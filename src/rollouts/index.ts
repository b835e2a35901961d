// Rollouts and each robot's Uptane director metadata, regenerated lazily (dirty flags with
// generations; docs/rollouts.md).
import { defineArea } from "../area.ts";

export default defineArea({
  key: "rollouts",
});
