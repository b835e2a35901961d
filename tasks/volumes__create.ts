// Creates volumes on their agents: the rows exist already (state creating, handle chosen by the
// database), so a crash anywhere here leaves nothing unaccounted for — the collector's report
// completes or fails a row that stays creating too long. The agent refusing (no such parent) is
// final; not reaching it is retried.
import { z } from "zod";
import { errorMessage } from "../src/lib/errors.ts";
import { PeerHttpError } from "../src/peers/client.ts";
import { volumeAgents } from "../src/volumes/agents-for.ts";
import { defineTask } from "../src/worker/define-task.ts";

interface Row {
  id: string;
  handle: string;
  parent: string | null;
  worker_id: string;
  worker_name: string;
  address: string | null;
}

export default defineTask({
  payload: z.object({ ids: z.array(z.coerce.number().int().positive()).min(1).max(500) }).strict(),
  async run({ ids }, { services, helpers }) {
    const agents = volumeAgents(services);
    const { rows } = await helpers.query<Row>(
      `select v.id, v.handle, p.handle as parent, w.id as worker_id, w.name as worker_name, w.address
         from gk_public.volumes v join gk_public.workers w on w.id = v.worker_id
         left join gk_public.volumes p on p.id = v.parent_id
        where v.id = any($1::bigint[]) and v.state = 'creating'`,
      [ids],
    );
    const errors: string[] = [];
    for (const r of rows) {
      if (!r.address) {
        errors.push(`${r.handle}: worker ${r.worker_name} has no address`);
        continue;
      }
      try {
        const client = await agents.client({ id: r.worker_id, name: r.worker_name, address: r.address });
        await client.request("POST", "/v1/volumes", { handle: r.handle, ...(r.parent ? { parent: r.parent } : {}) });
        await helpers.query("select gk_private.volume_created($1)", [r.id]);
      } catch (e) {
        if (e instanceof PeerHttpError && e.status >= 400 && e.status < 500) {
          await helpers.query("select gk_private.volume_create_failed($1, $2)", [r.id, errorMessage(e)]);
        } else {
          errors.push(`${r.handle}: ${errorMessage(e)}`);
        }
      }
    }
    if (errors.length) throw new Error(`${errors.length} of ${rows.length} volumes not created yet (first: ${errors[0]})`);
  },
});
