// The volume tests' agents: `groundskeeper agent` with the volumes role (test/helpers/peers.ts
// has the CA, controller identity and gateway they talk to).
import fs from "node:fs";
import path from "node:path";
import type { LongRunning } from "../../helpers/cli.ts";
import { type Peers, setupPeers as setupAnyPeers, spawnAgent } from "../../helpers/peers.ts";
import type { TestDb } from "../../helpers/db.ts";

export type { Peers } from "../../helpers/peers.ts";

export function setupPeers(db: TestDb, name = "volumes"): Promise<Peers> {
  return setupAnyPeers(db, name);
}

export interface AgentProcess {
  proc: LongRunning;
  url: string;
  dataDir: string;
  /** The volumes role's store root: init/, live/, dead/. */
  store: string;
  live(): string[];
}

/** Starts `groundskeeper agent` and waits until it has registered with the gateway. */
export async function startAgent(
  peers: Peers,
  creds: string,
  dataDir: string,
  opts: { heartbeatMs?: number; crlRefreshMs?: number; extraEnv?: Record<string, string> } = {},
): Promise<AgentProcess> {
  const { proc, url } = await spawnAgent(peers, creds, dataDir, { ...opts, roles: ["volumes"] });
  const store = path.join(dataDir, "volumes");
  return {
    proc,
    url,
    dataDir,
    store,
    live: () => fs.readdirSync(path.join(store, "live")).sort(),
  };
}
