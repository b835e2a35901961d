// `groundskeeper agent`: starts the roles, the one HTTPS server, and the loop that registers
// with Groundskeeper's peer gateway, heartbeats and refreshes the CRL. Nothing here stops the
// agent when Groundskeeper is unreachable: it keeps serving (with the CRL it saved) and retries.
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { PeerClient, PeerHttpError } from "../client.ts";
import { RevocationList } from "../crl.ts";
import { loadCredentialsDir } from "../tls.ts";
import type { AgentRole, StartedRole } from "./role.ts";
import { type AgentServerLimits, startAgentServer } from "./server.ts";

export interface AgentOptions {
  credentialsDir: string;
  /** https://host:port of Groundskeeper's peer gateway. */
  gatewayUrl: string;
  dataDir: string;
  host: string;
  port: number;
  /** The address Groundskeeper should use (default: the listening address). */
  advertise?: string;
  roles: AgentRole[];
  log: Logger;
  version?: string;
  heartbeatIntervalMs?: number;
  heartbeatTtlSeconds?: number;
  crlRefreshMs?: number;
  limits?: Partial<AgentServerLimits>;
}

export interface RunningAgent {
  url: string;
  address: string;
  /** Resolves once every role is registered (for tests and the CLI's "ready" line). */
  registered: Promise<void>;
  stop(): Promise<void>;
}

export async function runAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.log;
  const credentials = loadCredentialsDir(opts.credentialsDir);
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const crl = new RevocationList(credentials.caPem, path.join(opts.dataDir, "crl.pem"));
  await crl.loadSaved();
  const started: { role: AgentRole; started: StartedRole }[] = [];
  for (const role of opts.roles) {
    const dir = path.join(opts.dataDir, role.name);
    fs.mkdirSync(dir, { recursive: true });
    started.push({ role, started: await role.start({ dir, log: log.child({ role: role.name }) }) });
  }
  const server = await startAgentServer({
    credentials,
    crl,
    routes: started.flatMap((s) => s.started.routes),
    host: opts.host,
    port: opts.port,
    log,
    limits: opts.limits,
  });
  const address = opts.advertise ?? server.url;
  const gateway = new PeerClient(opts.gatewayUrl, credentials, { profile: "controller", maxSockets: 2, timeoutMs: 10_000 });
  const interval = opts.heartbeatIntervalMs ?? 10_000;
  const ttl = opts.heartbeatTtlSeconds ?? Math.max(3, Math.ceil((3 * interval) / 1000));
  const registered = new Set<string>();
  let lastCrl = 0;
  let onRegistered!: () => void;
  const allRegistered = new Promise<void>((r) => (onRegistered = r));

  const refreshCrl = async () => {
    const { crl_pem } = await gateway.request<{ crl_pem: string }>("GET", "/peer/v1/crl");
    await crl.update(crl_pem);
    lastCrl = Date.now();
  };

  const tick = async () => {
    if (!crl.loaded || Date.now() - lastCrl > (opts.crlRefreshMs ?? 60_000)) {
      await refreshCrl().catch((e) => log.warn({ err: (e as Error).message }, "agent: CRL refresh failed"));
    }
    for (const { role, started: s } of started) {
      try {
        if (!registered.has(role.name)) {
          await gateway.request("POST", `/peer/v1/${role.name}/register`, {
            address,
            version: opts.version ?? "",
            heartbeat_ttl_seconds: ttl,
          });
          registered.add(role.name);
          log.info({ role: role.name, address }, "agent: registered");
          if (registered.size === started.length) onRegistered();
        } else {
          const out = await gateway.request<{ state?: string }>("POST", `/peer/v1/${role.name}/heartbeat`, (await s.heartbeat?.()) ?? {});
          if (out?.state === "landed") log.info({ role: role.name }, "agent: landed by the operator; restart the agent to serve again");
        }
      } catch (e) {
        // Unknown to Groundskeeper (pruned) or refused: register again next time.
        if (e instanceof PeerHttpError && [403, 404, 409].includes(e.status)) registered.delete(role.name);
        log.warn({ role: role.name, err: (e as Error).message }, "agent: cannot reach Groundskeeper");
      }
    }
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = async () => {
    if (stopped) return;
    await tick();
    if (!stopped) timer = setTimeout(() => void loop(), interval);
  };
  void loop();

  return {
    url: server.url,
    address,
    registered: allRegistered,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await server.close();
      gateway.close();
      for (const s of started) await s.started.stop();
    },
  };
}
