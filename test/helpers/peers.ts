// Real peers for the tests of areas whose agents' roles Groundskeeper calls (volumes, exports): the
// local CA in the test database, Groundskeeper's controller identity issued through the
// certificate lifecycle, the peer gateway in-process with every area's routes, and agents as real
// processes (`groundskeeper agent`) with certificates enrolled the way an operator does.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { createPool } from "../../src/db/pool.ts";
import { ControllerIdentity } from "../../src/peers/controller.ts";
import { peerConnectionString } from "../../src/peers/peer-role.ts";
import { type PeerGateway, startPeerGateway } from "../../src/peers/gateway.ts";
import { writeCredentialsDir } from "../../src/peers/tls.ts";
import type { Services } from "../../src/services.ts";
import { areaPeerRoutes } from "../../src/areas.ts";
import { cliEnv, type LongRunning, spawnCli } from "./cli.ts";
import type { TestDb } from "./db.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { runJobs, testServices } from "./jobs.ts";

export interface Peers {
  ca: LocalCa;
  services: Services;
  identity: ControllerIdentity;
  gateway: PeerGateway;
  tmp: string;
  /** Environment of a `groundskeeper worker` process sharing this CA and master key. */
  workerEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** Enrols a worker like `groundskeeper workers enroll`; returns its credentials directory. */
  enroll(name: string): Promise<{ dir: string; workerId: string; certificateId: string }>;
  close(): Promise<void>;
}

export async function setupPeers(db: TestDb, name: string): Promise<Peers> {
  const masterKey = crypto.randomBytes(32);
  const secrets = new SecretBox(masterKey);
  const ca = new LocalCa(db.pool, secrets, { name, crlDebounceMs: 0 });
  const identity = new ControllerIdentity(db.pool, secrets, () => ca.caCertificatePem(), { reloadMs: 500 });
  const services = testServices({ ca, controller: identity, secrets });
  await identity.current(); // requests the controller certificate
  await runJobs(db, services);
  // The gateway's connections run as gk_peer, as under `serve` (src/cli/parts.ts).
  const peerPool = createPool(peerConnectionString(db.url), 4);
  const gateway = await startPeerGateway({
    db: peerPool,
    identity,
    routes: areaPeerRoutes,
    crlPem: () => ca.crlPem(),
    host: "127.0.0.1",
    port: 0,
    log: services.log,
  });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `gk-${name}-`));
  return {
    ca,
    services,
    identity,
    gateway,
    tmp,
    workerEnv: (extra = {}) =>
      cliEnv({
        DATABASE_URL: db.url,
        GROUNDSKEEPER_HOME: path.join(tmp, "home"),
        GK_MASTER_KEY: masterKey.toString("base64"),
        GK_CA_NAME: name,
        GK_CA_CRL_DEBOUNCE_MS: "0",
        LOG_LEVEL: "info",
        ...extra,
      }),
    async enroll(worker) {
      const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
      const { rows } = await db.query("select id, worker_id from gk_public.enroll_worker($1, $2)", [
        worker,
        publicKey.export({ type: "spki", format: "pem" }),
      ]);
      await runJobs(db, services);
      const pem = (await db.query("select gk_public.download_certificate($1) as pem", [rows[0].id])).rows[0].pem;
      if (!pem) throw new Error(`certificate of ${worker} not issued`);
      const dir = path.join(tmp, `creds-${worker}`);
      writeCredentialsDir(dir, {
        keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
        certPem: pem,
        caPem: await ca.caCertificatePem(),
      });
      return { dir, workerId: rows[0].worker_id, certificateId: rows[0].id };
    },
    async close() {
      await gateway.close();
      await peerPool.end();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** Starts `groundskeeper agent` with `roles` and waits until every role has registered. */
export async function spawnAgent(
  peers: Peers,
  creds: string,
  dataDir: string,
  opts: { roles?: string[]; heartbeatMs?: number; crlRefreshMs?: number; extraEnv?: Record<string, string> } = {},
): Promise<{ proc: LongRunning; url: string }> {
  const proc = spawnCli(
    [
      "agent",
      "--credentials",
      creds,
      "--gateway",
      peers.gateway.url,
      "--data-dir",
      dataDir,
      "--listen",
      "127.0.0.1:0",
      "--roles",
      (opts.roles ?? ["volumes"]).join(","),
      "--heartbeat",
      String(opts.heartbeatMs ?? 300),
      "--crl-refresh",
      String(opts.crlRefreshMs ?? 60_000),
    ],
    cliEnv({ LOG_LEVEL: "warn", ...opts.extraEnv }),
  );
  // Generous: on a loaded machine the CLI takes a while to start.
  const m = await proc.waitFor(/agent listening on (https:\/\/\S+)/, 90_000);
  await proc.waitFor(/agent registered/, 90_000);
  return { proc, url: m[1]! };
}
