// Periodic work as a reconciler: each activation computes desired vs actual from scratch,
// acts on the difference, and leaves an activations row with counts and per-item errors.
import type { JobHelpers } from "graphile-worker";

export interface Activation {
  id: number;
  /** Record one item that failed; the activation goes on with the others. */
  itemError(item: string, error: unknown): Promise<void>;
}

export async function runActivation(
  helpers: JobHelpers,
  task: string,
  body: (a: Activation) => Promise<Record<string, number>>,
): Promise<Record<string, number>> {
  const { rows } = await helpers.query<{ id: number }>("select gk_private.activation_start($1) as id", [task]);
  const id = Number(rows[0].id);
  const activation: Activation = {
    id,
    itemError: async (item, error) => {
      const msg = error instanceof Error ? error.message : String(error);
      await helpers.query("select gk_private.activation_error($1, $2, $3)", [id, item, msg]);
    },
  };
  try {
    const counts = await body(activation);
    await helpers.query("select gk_private.activation_finish($1, $2)", [id, JSON.stringify(counts)]);
    return counts;
  } catch (e) {
    await helpers.query("select gk_private.activation_finish($1, '{}'::jsonb, $2)", [id, (e as Error).message]);
    throw e;
  }
}
