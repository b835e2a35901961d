// PeerClient's deadlines (src/peers/client.ts): a call waiting for one of the peer's capped
// connections behind slow calls still gets its whole deadline for its own work once it has one,
// and the wait for a connection has its own bound. The peer is an HTTPS server in this process
// answering after a delay, with a worker certificate enrolled from the test CA (mutual TLS,
// checked by the client as the exports and volumes calls check their nodes): the delay is the
// only thing not real. Margins of a second or more either side of each deadline; no time is
// asserted, only which calls succeed.
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeerClient, PeerTimeoutError } from "../src/peers/client.ts";
import { loadCredentialsDir } from "../src/peers/tls.ts";
import { createTestDb } from "./helpers/db.ts";
import { type Peers, setupPeers } from "./helpers/peers.ts";

const db = await createTestDb();
let peers: Peers;
let server: https.Server;
let url: string;
let workerId: string;
const DELAY_MS = 2_000;

beforeAll(async () => {
  peers = await setupPeers(db, "peer-client");
  const enrolled = await peers.enroll("slow");
  workerId = enrolled.workerId;
  const own = loadCredentialsDir(enrolled.dir);
  server = https.createServer(
    { key: own.keyPem, cert: own.certPem, ca: own.caPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      req.resume();
      setTimeout(() => res.end(JSON.stringify({ ok: true })), DELAY_MS);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await peers?.close();
});

async function client(opts: { timeoutMs: number; queueTimeoutMs?: number }): Promise<PeerClient> {
  return new PeerClient(url, (await peers.identity.current())!, { profile: "worker", commonName: workerId, maxSockets: 1, ...opts });
}

describe("PeerClient deadlines", () => {
  it("a call queued behind a slow one gets its whole deadline once it has the connection", async () => {
    // Each call takes DELAY_MS of a 3 s deadline; the second waits DELAY_MS for the one
    // connection first, so it ends ~4 s after it was made (a deadline counted from then failed it).
    const c = await client({ timeoutMs: DELAY_MS + 1_000 });
    try {
      const results = await Promise.allSettled([c.request("GET", "/a"), c.request("GET", "/b")]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
    } finally {
      c.close();
    }
  });

  it("a call that finds no free connection within the queue deadline fails with PeerTimeoutError, the running call does not", async () => {
    const c = await client({ timeoutMs: DELAY_MS + 1_000, queueTimeoutMs: DELAY_MS - 1_000 });
    try {
      const [first, second] = await Promise.allSettled([c.request("GET", "/a"), c.download("/b")]);
      expect(first.status).toBe("fulfilled");
      expect(second.status).toBe("rejected");
      const e = (second as PromiseRejectedResult).reason;
      expect(e).toBeInstanceOf(PeerTimeoutError);
      expect(e.message).toMatch(/no free connection to the peer within 1000 ms/);
    } finally {
      c.close();
    }
  });

  it("a call over its own deadline fails with PeerTimeoutError", async () => {
    const c = await client({ timeoutMs: DELAY_MS - 1_000 });
    try {
      await expect(c.request("GET", "/a")).rejects.toThrow(/no answer within 1000 ms/);
    } finally {
      c.close();
    }
  });
});
