// The agent as a real process: it registers and heartbeats through the peer gateway, answers only
// Groundskeeper's (unrevoked) controller certificate, builds and destroys volumes atomically on
// its disk, and sweeps what a crash left in init/ and dead/ when it starts again.
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeerClient, PeerHttpError } from "../../src/peers/client.ts";
import { loadCredentialsDir } from "../../src/peers/tls.ts";
import { VolumeAgents } from "../../src/volumes/agents.ts";
import { createTestDb } from "../helpers/db.ts";
import { runJobs } from "../helpers/jobs.ts";
import { type AgentProcess, type Peers, setupPeers, startAgent } from "./helpers/peers.ts";

const db = await createTestDb();
let peers: Peers;
let agent: AgentProcess;
let workerId: string;
let creds: string;
let agents: VolumeAgents;

const H = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function client(): Promise<PeerClient> {
  return agents.client({ id: workerId, name: "w1", address: agent.url });
}

beforeAll(async () => {
  peers = await setupPeers(db);
  const enrolled = await peers.enroll("w1");
  workerId = enrolled.workerId;
  creds = enrolled.dir;
  agent = await startAgent(peers, creds, path.join(peers.tmp, "agent-w1"), { crlRefreshMs: 200 });
  agents = new VolumeAgents(peers.identity, { parallelism: 2, timeoutMs: 5_000 });
});

afterAll(async () => {
  agents?.close();
  await agent?.proc.stop("SIGKILL");
  await peers?.close();
});

describe("the agent", () => {
  it("registers its worker with its address, and heartbeats its counts", async () => {
    const { rows } = await db.query("select state, address, expires_at > now() as alive from gk_public.workers where id = $1", [workerId]);
    expect(rows[0]).toEqual({ state: "running", address: agent.url, alive: true });
    await waitUntil("a heartbeat reported counts", async () => {
      const r = await db.query("select live_volumes from gk_public.workers where id = $1", [workerId]);
      return r.rows[0].live_volumes === 0;
    });
  });

  it("answers only a controller certificate: no certificate fails the handshake, a worker's gets 403", async () => {
    const own = loadCredentialsDir(creds);
    const noCert = await new Promise<string>((resolve) => {
      const req = https.request(`${agent.url}/v1/volumes`, { ca: own.caPem, checkServerIdentity: () => undefined }, (res) =>
        resolve(`answered ${res.statusCode}`),
      );
      req.on("error", (e) => resolve(`refused: ${e.message}`));
      req.end();
    });
    expect(noCert).toMatch(/^refused/);
    const asWorker = new PeerClient(agent.url, own, { profile: "worker", commonName: workerId });
    await expect(asWorker.request("GET", "/v1/volumes")).rejects.toMatchObject({ status: 403 });
    asWorker.close();
    expect(await (await client()).request("GET", "/v1/volumes")).toEqual({ live: [], building: [] });
  });

  it("creates empty and copy-on-write volumes, refuses a child of a missing parent, destroys in batches (missing is fine)", async () => {
    const c = await client();
    await c.request("POST", "/v1/volumes", { handle: H(1) });
    fs.writeFileSync(path.join(agent.store, "live", H(1), "data.txt"), "parent data");
    await c.request("POST", "/v1/volumes", { handle: H(2), parent: H(1) });
    expect(fs.readFileSync(path.join(agent.store, "live", H(2), "data.txt"), "utf8")).toBe("parent data");
    // The child is a copy: changing it leaves the parent alone.
    fs.writeFileSync(path.join(agent.store, "live", H(2), "data.txt"), "child data");
    expect(fs.readFileSync(path.join(agent.store, "live", H(1), "data.txt"), "utf8")).toBe("parent data");
    await expect(c.request("POST", "/v1/volumes", { handle: H(3), parent: H(9) })).rejects.toMatchObject({ status: 404 });
    await expect(c.request("POST", "/v1/volumes", { handle: "../../etc" })).rejects.toMatchObject({ status: 400 });
    expect(agent.live()).toEqual([H(1), H(2)]);

    const out = await c.request("POST", "/v1/volumes/destroy", { handles: [H(2), H(7)] });
    expect(out).toEqual({ destroyed: [H(2), H(7)], failed: [], pending: [] });
    expect(agent.live()).toEqual([H(1)]);
    await waitUntil("dead/ drained", async () => fs.readdirSync(path.join(agent.store, "dead")).length === 0);
    await expect(c.request("POST", "/v1/volumes/destroy", { handles: Array(1001).fill(H(1)) })).rejects.toMatchObject({ status: 400 });
  });

  it("refuses a revoked controller certificate once the CRL says so; a new one is accepted", async () => {
    const before = await peers.identity.current();
    await db.query("delete from gk_public.controllers");
    await runJobs(db, peers.services); // revoked at the CA: the CRL now lists it
    const stale = new PeerClient(agent.url, before!, { profile: "worker", commonName: workerId });
    await waitUntil("the agent refuses the revoked certificate", () =>
      stale.request("GET", "/v1/volumes").then(
        () => false,
        (e) => e instanceof PeerHttpError && e.status === 403,
      ),
    );
    stale.close();
    await waitUntil("a new controller certificate is issued", async () => {
      const c = await peers.identity.current();
      if (!c) await runJobs(db, peers.services);
      return c !== null && c.certPem !== before!.certPem;
    });
    await waitUntil("the new certificate is accepted", () =>
      client().then((c) =>
        c.request("GET", "/v1/volumes").then(
          () => true,
          () => false,
        ),
      ),
    );
  });

  it("the gateway refuses a superseded worker certificate at once (database status, no CRL delay)", async () => {
    const old = loadCredentialsDir(creds);
    const gw = new PeerClient(peers.gateway.url, old, { profile: "controller" });
    expect(await gw.request("POST", "/peer/v1/volumes/heartbeat", {})).toEqual({ state: "running" });
    const second = await peers.enroll("w1");
    await expect(gw.request("POST", "/peer/v1/volumes/heartbeat", {})).rejects.toMatchObject({ status: 403 });
    gw.close();
    const fresh = new PeerClient(peers.gateway.url, loadCredentialsDir(second.dir), { profile: "controller" });
    expect(await fresh.request("POST", "/peer/v1/volumes/heartbeat", {})).toEqual({ state: "running" });
    fresh.close();
    creds = second.dir;
  });

  it("after a SIGKILL, starting again removes what was left under init/ and dead/, and keeps live/", async () => {
    await agent.proc.stop("SIGKILL");
    fs.mkdirSync(path.join(agent.store, "init", H(5)));
    fs.writeFileSync(path.join(agent.store, "init", H(5), "half"), "x");
    fs.mkdirSync(path.join(agent.store, "dead", `${H(6)}.abcd`));
    agent = await startAgent(peers, creds, agent.dataDir, { crlRefreshMs: 200 });
    expect(fs.readdirSync(path.join(agent.store, "init"))).toEqual([]);
    expect(fs.readdirSync(path.join(agent.store, "dead"))).toEqual([]);
    expect(agent.live()).toEqual([H(1)]);
    const { rows } = await db.query("select address from gk_public.workers where id = $1", [workerId]);
    expect(rows[0].address).toBe(agent.url);
  });
});
