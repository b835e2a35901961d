// The sweep of attachments no record holds (tasks/exports__sweep_attachments.ts): each in-service
// node lists its attachments a page at a time (GET /v1/exports?after=&limit=, agent-role.ts);
// one statement per page tells which ids no record may still use on that node
// (gk_private.exports_unreferenced_attachments, sql/740_exports_attachment_sweep.sql); those
// attached longer ago than the grace period — by the node's clock, which the listing carries — are
// detached. The grace period is longer than the controller's attach deadline, so however late an
// attach's answer is, its attachment is never cut. Where a node's pass stands is kept on its
// row, so a node with more attachments than one activation's pages resumes where it stopped.
// A node that does not answer (or refuses a detach) is an item error of the activation, its
// page retried by the next one; the other nodes are swept all the same.
import { z } from "zod";
import { mapSettled } from "../lib/map-limit.ts";
import { PeerHttpError } from "../peers/client.ts";
import type { Services } from "../services.ts";
import { LIST_MAX } from "./agent-role.ts";
import { exportNodes } from "./nodes.ts";

const n = z.number().int().min(0);

export const SweepStatus = z.object({
  /** In-service nodes looked at, and of those the ones that failed (an item error each). */
  nodes: n,
  nodes_failed: n,
  /** Nodes whose pass is not finished (more pages than max_pages_per_node): resumed next activation. */
  nodes_unfinished: n,
  /** Attachments listed; of those, held by a record, younger than the grace period, detached. */
  listed: n,
  referenced: n,
  young: n,
  detached: n,
  /** The attachments detached (≤ 100). */
  detached_ids: z.array(z.string()).max(100),
});
export type SweepStatus = z.infer<typeof SweepStatus>;

export const SweepLimits = z.object({
  /**
   * An unreferenced attachment is detached only once it is older than this (by the node's
   * clock). It must be longer than GK_EXPORTS_ATTACH_TIMEOUT_MS: an activation refuses to run otherwise.
   */
  grace_seconds: z
    .number()
    .int()
    .positive()
    .max(7 * 86_400)
    .default(900),
  /** Attachments per listing page (the node answers at most LIST_MAX). */
  page_size: z.number().int().positive().max(LIST_MAX).default(LIST_MAX),
  /** Pages per node per activation; a node with more resumes at the next activation. */
  max_pages_per_node: z.number().int().positive().max(10_000).default(50),
  /** Nodes looked at per activation (least recently swept first), and how many at once. */
  max_nodes: z.number().int().positive().max(10_000).default(1_000),
  node_concurrency: z.number().int().positive().max(64).default(4),
});
export type SweepLimits = z.infer<typeof SweepLimits>;

export interface SweepContext {
  query: (sql: string, params?: unknown[]) => Promise<{ rows: any[] }>;
  services: Services;
  limits: SweepLimits;
  itemError(item: string, error: unknown): Promise<void>;
  /** Work is left past the limits. */
  more(): void;
}

const Page = z.object({
  now: z.iso.datetime(),
  attachments: z.array(z.object({ attachment_id: z.uuid(), attached_at: z.iso.datetime() })).max(LIST_MAX),
  next_after: z.uuid().nullable(),
});

interface SweepNode {
  id: string;
  worker_id: string;
  worker_name: string | null;
  address: string;
  sweep_after: string | null;
}

/** Why these limits must not run in this process (a grace period an attach in flight could outlive), or null. */
export function sweepLimitsProblem(services: Services, limits: SweepLimits): string | null {
  const { attachTimeoutMs } = exportNodes(services).opts;
  if (limits.grace_seconds * 1000 > attachTimeoutMs) return null;
  return `grace_seconds (${limits.grace_seconds}) must be longer than the attach deadline GK_EXPORTS_ATTACH_TIMEOUT_MS (${attachTimeoutMs} ms): an attach in flight could be cut`;
}

export async function sweepAttachments(ctx: SweepContext): Promise<SweepStatus> {
  const { limits } = ctx;
  const problem = sweepLimitsProblem(ctx.services, limits);
  if (problem) throw new Error(problem);
  const status: SweepStatus = {
    nodes: 0,
    nodes_failed: 0,
    nodes_unfinished: 0,
    listed: 0,
    referenced: 0,
    young: 0,
    detached: 0,
    detached_ids: [],
  };
  const { rows } = await ctx.query("select * from gk_private.export_nodes_to_sweep($1)", [limits.max_nodes]);
  const todo = rows as SweepNode[];
  status.nodes = todo.length;
  await mapSettled(todo, limits.node_concurrency, async (node) => {
    try {
      if (!(await sweepNode(ctx, node, status))) {
        status.nodes_unfinished++;
        ctx.more();
      }
    } catch (e) {
      status.nodes_failed++;
      await ctx.itemError(`node ${node.worker_name ?? node.id}`, e);
    }
  });
  return status;
}

/** Sweeps one node from where its pass stands; true when the pass finished. Throws at the first failure. */
async function sweepNode(ctx: SweepContext, node: SweepNode, status: SweepStatus): Promise<boolean> {
  const { limits } = ctx;
  const nodes = exportNodes(ctx.services);
  const client = await nodes.client({ id: node.id, worker_id: node.worker_id, address: node.address });
  let after = node.sweep_after;
  for (let page = 0; page < limits.max_pages_per_node; page++) {
    const q = new URLSearchParams({ limit: String(limits.page_size), ...(after ? { after } : {}) });
    const parsed = Page.safeParse(await client.request("GET", `/v1/exports?${q}`));
    if (!parsed.success) throw new Error(`the node's listing is malformed: ${parsed.error.issues[0]?.message}`);
    const { now, attachments, next_after } = parsed.data;
    status.listed += attachments.length;
    const cutoff = Date.parse(now) - limits.grace_seconds * 1000;
    const old = attachments.filter((a) => Date.parse(a.attached_at) < cutoff).map((a) => a.attachment_id);
    status.young += attachments.length - old.length;
    const unreferenced: string[] = old.length
      ? (await ctx.query("select gk_private.exports_unreferenced_attachments($1, $2::uuid[]) as ids", [node.id, old])).rows[0].ids
      : [];
    status.referenced += old.length - unreferenced.length;
    const detached = await mapSettled(unreferenced, nodes.opts.parallelism, async (id) => {
      try {
        await client.request("DELETE", `/v1/exports/${id}`);
      } catch (e) {
        if (!(e instanceof PeerHttpError && e.status === 404)) throw e;
      }
      return id;
    });
    for (const r of detached) {
      if (r.status !== "fulfilled") continue;
      status.detached++;
      if (status.detached_ids.length < 100) status.detached_ids.push(r.value);
    }
    const failed = detached.find((r) => r.status === "rejected");
    // The page is swept again by the next activation (a detach of a missing attachment is fine).
    if (failed) throw (failed as PromiseRejectedResult).reason;
    after = next_after;
    await ctx.query("select gk_private.export_node_attachments_swept($1, $2)", [node.id, after]);
    if (after === null) return true;
  }
  return false;
}
