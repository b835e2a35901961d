// Publishes a team's TUF repository: re-sign what is dirty (one transaction, repository row
// lock), then upload what is stored but not yet uploaded (timestamp.json last).
import { z } from "zod";
import { requireService } from "../src/services.ts";
import { publishTeam } from "../src/tuf/publish.ts";
import { tufSecretBox } from "../src/tuf/online-key.ts";
import { defineTask } from "../src/worker/define-task.ts";

export default defineTask({
  payload: z.object({ team_id: z.uuid() }).strict(),
  async run({ team_id }, { services, helpers }) {
    const r = await publishTeam(helpers.withPgClient, tufSecretBox(), requireService(services, "blobs"), team_id);
    services.log.info({ team_id, ...r }, "tuf publish");
  },
});
