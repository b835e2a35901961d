// Groundskeeper's clients for export nodes: one per node, authenticated with the controller's
// certificate and expecting the node's own worker certificate back (CN = workers.id). Its socket
// cap is the per-node parallelism, so however many sagas run, one node never gets more than that
// many connections from this process. One instance per services object (per process).
import { PeerClient } from "../peers/client.ts";
import { requireService, type Services } from "../services.ts";

export interface NodeRef {
  id: string;
  worker_id: string;
  address: string;
}

export interface NodeOptions {
  parallelism: number;
  /** Deadline of status/detach calls. */
  timeoutMs: number;
  /** Deadline of an attach (the node fetches and verifies the blob before answering). */
  attachTimeoutMs: number;
}

export class ExportNodes {
  readonly #services: Services;
  readonly opts: NodeOptions;
  readonly #clients = new Map<string, { key: string; client: PeerClient }>();

  constructor(services: Services, opts: NodeOptions) {
    this.#services = services;
    this.opts = opts;
  }

  async client(node: NodeRef): Promise<PeerClient> {
    const creds = await requireService(this.#services, "controller").current();
    if (!creds) throw new Error("the controller certificate is not issued yet (a worker issues it): try again shortly");
    const key = `${node.address} ${node.worker_id} ${creds.certPem}`;
    const known = this.#clients.get(node.id);
    if (known?.key === key) return known.client;
    known?.client.close();
    const client = new PeerClient(node.address, creds, {
      profile: "worker",
      commonName: node.worker_id,
      maxSockets: this.opts.parallelism,
      timeoutMs: this.opts.timeoutMs,
    });
    this.#clients.set(node.id, { key, client });
    return client;
  }

  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

const byServices = new WeakMap<Services, ExportNodes>();

/** GK_EXPORTS_PARALLELISM (per node, default 8), GK_EXPORTS_CALL_TIMEOUT_MS (10 s), GK_EXPORTS_ATTACH_TIMEOUT_MS (120 s). */
export function exportNodes(services: Services, env: NodeJS.ProcessEnv = process.env): ExportNodes {
  let n = byServices.get(services);
  if (!n) {
    n = new ExportNodes(services, {
      parallelism: Number(env.GK_EXPORTS_PARALLELISM ?? 8),
      timeoutMs: Number(env.GK_EXPORTS_CALL_TIMEOUT_MS ?? 10_000),
      attachTimeoutMs: Number(env.GK_EXPORTS_ATTACH_TIMEOUT_MS ?? 120_000),
    });
    byServices.set(services, n);
  }
  return n;
}
