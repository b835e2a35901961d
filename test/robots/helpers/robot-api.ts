// A real robot API for the robots tests: the local CA in the test database, Groundskeeper's
// controller certificate issued through the certificate lifecycle, the listener in-process with
// every area's robot routes, and robots holding certificates requested the way an operator does
// (requestCertificate with the robot's own key) and issued by certificates__issue.
import { run as runWorker } from "graphile-worker";
import crypto from "node:crypto";
import https from "node:https";
import { LocalCa } from "../../../src/adapters/ca/local.ts";
import { areaRobotRoutes } from "../../../src/areas.ts";
import { createPool } from "../../../src/db/pool.ts";
import { quietWorkerLogger } from "../../../src/lib/log.ts";
import { buildTaskList } from "../../../src/worker/task-list.ts";
import { ControllerIdentity } from "../../../src/peers/controller.ts";
import { peerConnectionString } from "../../../src/peers/peer-role.ts";
import { type RobotApi, startRobotApi } from "../../../src/peers/robot-api.ts";
import { expectPeer } from "../../../src/peers/tls.ts";
import type { SecretBox } from "../../../src/lib/secrets.ts";
import type { Services } from "../../../src/services.ts";
import type { TestDb } from "../../helpers/db.ts";
import { runJobs, testSecrets, testServices } from "../../helpers/jobs.ts";

export interface RobotKey {
  keyPem: string;
  publicKeyPem: string;
}

export interface RobotCredentials extends RobotKey {
  certificateId: string;
  certPem: string;
}

export interface RobotApiHarness {
  ca: LocalCa;
  caPem: string;
  services: Services;
  /** The in-process listener (absent with `listen: false`). */
  api: RobotApi | undefined;
  /** Where requests go: the in-process listener, or a `groundskeeper serve` process. */
  url: string;
  /** Runs due jobs (issuance, revocation) with this harness's CA. */
  runJobs(): Promise<void>;
  /** A worker running in the background (as `groundskeeper worker` would, without cron). */
  startWorker(): Promise<{ stop(): Promise<void> }>;
  newKey(): RobotKey;
  /** Requests a certificate for the robot with a key of its own and runs the issuance. */
  enroll(robotId: string, key?: RobotKey): Promise<RobotCredentials>;
  /** One HTTPS request with the given client credentials; keep-alive through `agent` if given. */
  request(
    creds: Pick<RobotCredentials, "keyPem" | "certPem"> | null,
    method: string,
    path: string,
    body?: unknown,
    agent?: https.Agent,
  ): Promise<Answer>;
  close(): Promise<void>;
}

export interface Answer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

export async function setupRobotApi(
  db: TestDb,
  opts: { name?: string; handlerTimeoutMs?: number; secrets?: SecretBox; listen?: boolean } = {},
): Promise<RobotApiHarness> {
  const secrets = opts.secrets ?? testSecrets;
  const ca = new LocalCa(db.pool, secrets, { name: opts.name ?? "robots", crlDebounceMs: 0 });
  const identity = new ControllerIdentity(db.pool, secrets, () => ca.caCertificatePem(), { reloadMs: 500 });
  const services = testServices({ ca, controller: identity, secrets });
  const run = () => runJobs(db, services);
  await identity.current(); // requests the controller certificate
  await run();
  // The listener's connections run as gk_peer, as under `serve` (src/cli/parts.ts).
  const peerPool = opts.listen === false ? undefined : createPool(peerConnectionString(db.url), 8);
  const api =
    peerPool === undefined
      ? undefined
      : await startRobotApi({
          db: peerPool,
          identity,
          routes: areaRobotRoutes,
          services,
          host: "127.0.0.1",
          port: 0,
          log: services.log,
          ...(opts.handlerTimeoutMs ? { limits: { handlerTimeoutMs: opts.handlerTimeoutMs } } : {}),
        });
  const caPem = await ca.caCertificatePem();
  const newKey = (): RobotKey => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    return {
      keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      publicKeyPem: publicKey.export({ type: "spki", format: "pem" }) as string,
    };
  };
  const harness: RobotApiHarness = {
    ca,
    caPem,
    services,
    api,
    url: api?.url ?? "",
    runJobs: run,
    async startWorker() {
      const pgPool = createPool(db.url, 4);
      const runner = await runWorker({
        pgPool,
        taskList: await buildTaskList(services),
        concurrency: 2,
        pollInterval: 100,
        noHandleSignals: true,
        logger: quietWorkerLogger(),
      });
      return {
        async stop() {
          await runner.stop();
          await pgPool.end();
        },
      };
    },
    newKey,
    async enroll(robotId, key = newKey()) {
      const { rows } = await db.query("select id from gk_public.request_certificate($1, $2)", [robotId, key.publicKeyPem]);
      await run();
      const pem = (await db.query("select pem from gk_public.certificates where id = $1", [rows[0].id])).rows[0].pem;
      if (!pem) throw new Error(`certificate of robot ${robotId} not issued`);
      return { ...key, certificateId: rows[0].id, certPem: pem };
    },
    request(creds, method, path, body, agent) {
      const url = `${harness.url}${path}`;
      return new Promise<Answer>((resolve, reject) => {
        const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
        const req = https.request(
          url,
          {
            method,
            ca: caPem,
            ...(creds ? { key: creds.keyPem, cert: creds.certPem } : {}),
            // The robot checks who answers: Groundskeeper's controller certificate (addressed by IP).
            checkServerIdentity: expectPeer("controller"),
            headers: data ? { "Content-Type": "application/json", "Content-Length": String(data.length) } : {},
            ...(agent ? { agent } : { agent: false }),
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              let parsed: unknown = text;
              try {
                parsed = text ? JSON.parse(text) : undefined;
              } catch {}
              resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
            });
          },
        );
        req.on("error", reject);
        req.end(data);
      });
    },
    close: async () => {
      await api?.close();
      await peerPool?.end();
    },
  };
  return harness;
}
