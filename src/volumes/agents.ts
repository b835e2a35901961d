// Groundskeeper's clients for the agents of build workers: one per worker, authenticated with the
// controller's certificate and expecting that worker's own certificate back. Its socket cap is
// the per-agent parallelism, so however many destroys are due, one agent never gets more than
// that many connections from this process (Concourse's ATC ran out of file descriptors there).
import { PeerClient } from "../peers/client.ts";
import type { ControllerIdentity } from "../peers/controller.ts";

export interface AgentWorker {
  id: string;
  name: string;
  address: string;
}

export class VolumeAgents {
  readonly #identity: ControllerIdentity;
  readonly #parallelism: number;
  readonly #timeoutMs: number;
  readonly #clients = new Map<string, { key: string; client: PeerClient }>();

  constructor(identity: ControllerIdentity, opts: { parallelism?: number; timeoutMs?: number } = {}) {
    this.#identity = identity;
    this.#parallelism = opts.parallelism ?? 4;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  get parallelism(): number {
    return this.#parallelism;
  }

  async client(worker: AgentWorker): Promise<PeerClient> {
    const creds = await this.#identity.current();
    if (!creds) throw new Error("the controller certificate is not issued yet (a worker issues it): try again shortly");
    const key = `${worker.address} ${creds.certPem}`;
    const known = this.#clients.get(worker.id);
    if (known?.key === key) return known.client;
    known?.client.close();
    const client = new PeerClient(worker.address, creds, {
      profile: "worker",
      commonName: worker.id,
      maxSockets: this.#parallelism,
      timeoutMs: this.#timeoutMs,
    });
    this.#clients.set(worker.id, { key, client });
    return client;
  }

  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
