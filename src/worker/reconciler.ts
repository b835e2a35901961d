// Periodic work as a reconciler (after omicron's background tasks): an activation takes no input
// but its limits, computes desired vs actual from scratch, acts on the difference within those
// limits, and records a typed status in gk_public.activations — counts and lists, with `errors`
// collected item by item instead of aborting the run. Its `schedule` puts it in the crontab
// (src/worker/crontab.ts, with its job key); gk_public.activate_reconciler runs it now; the dead-worker sweep closes a run whose worker
// died (sql/060_queue.sql).
import type { JobHelpers } from "graphile-worker";
import { z } from "zod";
import type { Services } from "../services.ts";
import { defineTask, type TaskFactory } from "./define-task.ts";

/** At most this many item errors are copied into the status JSON; all are in activation_errors. */
const MAX_LISTED_ERRORS = 100;

export interface ActivationContext<L> {
  services: Services;
  helpers: JobHelpers;
  /** gk_public.activations.id of this run. */
  id: number;
  /** This activation's limits: the definition's defaults, overridden by the job payload's `limits`. */
  limits: L;
  /** Records one item that failed (activation_errors, and status.errors); the run goes on. */
  itemError(item: string, error: unknown): Promise<void>;
  /** Work remains beyond this activation's limits: the next activation runs soon, not at the next tick. */
  again(afterSeconds?: number): void;
}

type AnyObject = z.ZodObject<z.ZodRawShape>;
const noLimits = z.object({});

export interface ReconcilerDefinition<S extends AnyObject, L extends AnyObject> {
  /** The task identifier (the file name in tasks/), e.g. "bin__reconcile". */
  name: string;
  /** One sentence for operators (gk_public.reconcilers, GraphQL, status). */
  description: string;
  /** When it runs: a crontab time pattern (UTC), e.g. "*\/5 * * * *". Without one it runs only when activated. */
  schedule?: string;
  /** The status an activation returns; stored in activations.details with `errors` and `limits`. */
  status: S;
  /** Per-activation limits with their defaults (e.g. z.object({ max_items: z.number().int().positive().default(10_000) })). */
  limits?: L;
  /** Numeric summary for activations.counts; default: the status's top-level numbers. */
  counts?(status: z.infer<S>): Record<string, number>;
  run(ctx: ActivationContext<z.infer<L>>): Promise<z.infer<S>>;
}

export interface ReconcilerInfo {
  name: string;
  description: string;
  schedule?: string;
}

/** A task factory that is a reconciler: the task list registers it (gk_public.reconcilers). */
export type ReconcilerFactory = TaskFactory & { reconciler: ReconcilerInfo };

export function isReconciler(f: TaskFactory): f is ReconcilerFactory {
  return typeof (f as Partial<ReconcilerFactory>).reconciler === "object";
}

export function defineReconciler<S extends AnyObject, L extends AnyObject = typeof noLimits>(
  def: ReconcilerDefinition<S, L>,
): ReconcilerFactory {
  const limitsSchema = (def.limits ?? noLimits) as L;
  const payload = z.object({ _cron: z.unknown().optional(), limits: limitsSchema.optional() }).strict();
  const factory = defineTask({
    payload,
    async run(p, { services, helpers }) {
      if (helpers.job.task_identifier !== def.name) {
        throw new Error(`reconciler ${def.name} runs as task ${helpers.job.task_identifier}: the file name must be its name`);
      }
      const limits = (p.limits ?? limitsSchema.parse({})) as z.infer<L>;
      await activate(def, { services, helpers, limits });
    },
  });
  if (def.schedule !== undefined && !/^\S+( \S+){4}$/.test(def.schedule)) {
    throw new Error(`reconciler ${def.name}: schedule must be five crontab fields (minute hour day month weekday), not "${def.schedule}"`);
  }
  return Object.assign(factory, { reconciler: { name: def.name, description: def.description, schedule: def.schedule } });
}

async function activate<S extends AnyObject, L extends AnyObject>(
  def: ReconcilerDefinition<S, L>,
  { services, helpers, limits }: { services: Services; helpers: JobHelpers; limits: z.infer<L> },
): Promise<void> {
  const { rows } = await helpers.query<{ id: string }>("select gk_private.activation_start($1, $2) as id", [
    def.name,
    helpers.job.locked_by ?? null,
  ]);
  const id = Number(rows[0].id);
  const errors: string[] = [];
  let againAfter: number | undefined;
  const ctx: ActivationContext<z.infer<L>> = {
    services,
    helpers,
    id,
    limits,
    async itemError(item, error) {
      const msg = error instanceof Error ? error.message : String(error);
      if (errors.length < MAX_LISTED_ERRORS) errors.push(`${item}: ${msg}`);
      await helpers.query("select gk_private.activation_error($1, $2, $3)", [id, item, msg]);
    },
    again(afterSeconds = 10) {
      againAfter = Math.min(againAfter ?? Infinity, Math.max(0, afterSeconds));
    },
  };
  const finish = (counts: Record<string, number>, details: Record<string, unknown>, error: string | null) =>
    helpers.query("select gk_private.activation_finish($1, $2, $3, $4)", [id, JSON.stringify(counts), error, JSON.stringify(details)]);
  let status: z.infer<S>;
  try {
    const parsed = def.status.safeParse(await def.run(ctx));
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "status"}: ${i.message}`).join("; ");
      throw new Error(`${def.name} returned a status that does not match its schema: ${detail}`);
    }
    status = parsed.data as z.infer<S>;
  } catch (e) {
    await finish({}, { errors, limits }, (e as Error).message ?? String(e));
    throw e;
  }
  await finish(def.counts ? def.counts(status) : numericFields(status), { ...status, errors, limits }, null);
  if (againAfter !== undefined) {
    await helpers.query("select gk_private.reconciler_activate($1, now() + make_interval(secs => $2))", [def.name, againAfter]);
  }
}

function numericFields(status: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(status).filter((e): e is [string, number] => typeof e[1] === "number"));
}
