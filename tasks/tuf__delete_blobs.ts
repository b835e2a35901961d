// Removes pruned metadata files (see gk_private.retention_prune__tuf_metadata) from the blob
// store. Deleting a missing file is not an error, so a retry is harmless.
import { z } from "zod";
import { requireService } from "../src/services.ts";
import { metadataKey } from "../src/tuf/layout.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z
    .object({
      team_id: z.uuid(),
      files: z
        .array(z.string().regex(/^[0-9]+\.[a-z0-9-]+\.json$/))
        .min(1)
        .max(1000),
    })
    .strict(),
  async run({ team_id, files }, { services }) {
    await requireService(services, "blobs").deleteMany(files.map((f) => metadataKey(team_id, f)));
  },
});
