// Robots fetch an image from its export node directly: real export nodes (`groundskeeper agent
// --roles exports`), the real robot API (mutual TLS, certificate status in the database, on a
// gk_peer pool) and robots with certificates issued through the lifecycle. A robot asks the robot
// API for an image of its own team and gets the live export's URL and a capability signed with
// the controller certificate's key; the node serves the bytes (hash checked, ranges too) to that
// robot with that token only. Refused at the node: no token, a tampered or foreign-signed token,
// an expired or too long-lived one, one for another attachment, another node or another robot, and
// any other route even with a valid token. Refused at the robot API: another team's image, an
// unknown one, a malformed id; an image with no live export yet is a 503 with Retry-After. The
// controller's own calls need no token, as before.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { areaRobotRoutes } from "../../src/areas.ts";
import { createPool } from "../../src/db/pool.ts";
import { signCapability } from "../../src/peers/capability.ts";
import { peerConnectionString } from "../../src/peers/peer-role.ts";
import { type RobotApi, startRobotApi } from "../../src/peers/robot-api.ts";
import { expectPeer, type PeerCredentials } from "../../src/peers/tls.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertExportNode, insertExports, insertImages, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs } from "../helpers/jobs.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { waitFor } from "../helpers/wait.ts";
import { coordinateOnce } from "./helpers/coordinate.ts";
import { type NodeProcess, publishImages, startNode } from "./helpers/nodes.ts";

const db = await createTestDb();
const teamA = (await insertTeam(db, { name: "fetchers" })).id;
const teamB = (await insertTeam(db, { name: "others" })).id;
let peers: Peers;
let api: RobotApi;
let peerPool: ReturnType<typeof createPool>;
const nodes: NodeProcess[] = [];
let caPem: string;
interface Robot {
  id: string;
  keyPem: string;
  certPem: string;
  serial: string;
}
const robots: Record<"a1" | "a2" | "b1", Robot> = {} as never;
let imageA: { id: string; bytes: Buffer };
let imageA2: { id: string; bytes: Buffer };
let imageB: { id: string };

async function enroll(robotId: string): Promise<Robot> {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const { rows } = await db.query("select id from gk_public.request_certificate($1, $2)", [
    robotId,
    publicKey.export({ type: "spki", format: "pem" }),
  ]);
  await runJobs(db, peers.services);
  const cert = (await db.query("select pem, serial from gk_public.certificates where id = $1", [rows[0].id])).rows[0];
  return { id: robotId, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string, certPem: cert.pem, serial: cert.serial };
}

beforeAll(async () => {
  peers = await setupPeers(db, "robotfetch");
  caPem = await peers.ca.caCertificatePem();
  // One at a time: each enrolment runs the job queue.
  // A short CRL refresh: the revoked controller's tokens are refused within it.
  for (const name of ["n1", "n2"]) nodes.push(await startNode(peers, name, { crlRefreshMs: 300 }));
  peerPool = createPool(peerConnectionString(db.url), 4);
  api = await startRobotApi({
    db: peerPool,
    identity: peers.identity,
    routes: areaRobotRoutes,
    services: peers.services,
    host: "127.0.0.1",
    port: 0,
    log: peers.services.log,
  });
  const [a1, a2] = await insertRobots(db, { team: teamA, count: 2 });
  const [b1] = await insertRobots(db, { team: teamB, count: 1 });
  robots.a1 = await enroll(a1!.id);
  robots.a2 = await enroll(a2!.id);
  robots.b1 = await enroll(b1!.id);
  const a = await publishImages(db, peers, teamA, 2);
  const b = await publishImages(db, peers, teamB, 1);
  imageA = { id: a.images[0]!.id, bytes: a.bytes.get(a.images[0]!.id)! };
  imageA2 = { id: a.images[1]!.id, bytes: a.bytes.get(a.images[1]!.id)! };
  imageB = { id: b.images[0]!.id };
  await waitFor(async () => {
    await coordinateOnce(db, peers.services);
    await runJobs(db, peers.services);
    const { rows } = await db.query("select count(*)::int as n from gk_public.exports where state = 'live'");
    return rows[0].n === 3;
  }, "three live exports");
}, 180_000);

afterAll(async () => {
  await api?.close();
  await peerPool?.end();
  for (const n of nodes) await n.proc.stop("SIGKILL");
  await peers?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: any;
}

/** One HTTPS GET as `creds`, checking the server is `expected` (profile, owner). */
function get(
  url: string,
  creds: Pick<PeerCredentials, "keyPem" | "certPem">,
  expected: { profile: string; commonName?: string },
  headers: Record<string, string> = {},
  method = "GET",
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        key: creds.keyPem,
        cert: creds.certPem,
        ca: caPem,
        checkServerIdentity: expectPeer(expected.profile, expected.commonName),
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          let json: unknown;
          try {
            json = JSON.parse(body.toString("utf8"));
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

/** The robot API's answer for `robot` asking where to fetch `imageId`. */
const askApi = (robot: Robot, imageId: string) => get(`${api.url}/robot/v1/images/${imageId}/export`, robot, { profile: "controller" });

/** The node serving `url`. */
const nodeOf = (url: string) => nodes.find((n) => url.startsWith(`${n.url}/`))!;

async function fetchFromNode(robot: Robot, url: string, token: string | undefined, headers: Record<string, string> = {}) {
  const n = nodeOf(url);
  return get(url, robot, { profile: "worker", commonName: n.workerId }, token ? { Authorization: `Bearer ${token}`, ...headers } : headers);
}

async function attachmentOf(imageId: string): Promise<string> {
  return (await db.query("select attachment_id from gk_public.exports where resource_id = $1 and state = 'live'", [imageId])).rows[0]
    .attachment_id;
}

describe("robots fetch images from export nodes", () => {
  it("a robot asks for its team's image and fetches it from its node directly, hash checked (ranges too)", async () => {
    const r = await askApi(robots.a1, imageA.id);
    expect(r.status).toBe(200);
    const n = nodeOf(r.json.url);
    expect(n).toBeDefined();
    expect(r.json).toMatchObject({
      image_id: imageA.id,
      sha256: sha(imageA.bytes),
      length: imageA.bytes.length,
      node: { worker_id: n.workerId },
    });
    const ttl = (Date.parse(r.json.expires_at) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(240);
    expect(ttl).toBeLessThanOrEqual(300);
    const got = await fetchFromNode(robots.a1, r.json.url, r.json.token);
    expect(got.status).toBe(200);
    expect(sha(got.body)).toBe(r.json.sha256);
    const part = await fetchFromNode(robots.a1, r.json.url, r.json.token, { Range: "bytes=10-19" });
    expect(part.status).toBe(206);
    expect(part.body.equals(imageA.bytes.subarray(10, 20))).toBe(true);
  });

  it("the node refuses no token, tampered, foreign-signed, expired, too long-lived, other-attachment, other-node and other-robot tokens", async () => {
    const r = await askApi(robots.a1, imageA.id);
    const url: string = r.json.url;
    const token: string = r.json.token;
    const n = nodeOf(url);
    const other = nodes.find((x) => x !== n)!;
    const controller = (await peers.identity.current())!;
    const attachment = await attachmentOf(imageA.id);
    const refused = async (t: string | undefined, robot = robots.a1, at = url) => {
      const a = await fetchFromNode(robot, at, t);
      expect(a.status).toBe(403);
      return a.json.error as string;
    };
    expect(await refused(undefined)).toMatch(/capability token is required/);
    // Claims changed after signing: the signature no longer matches.
    const [p, claims, sig, cert] = token.split(".");
    const changed = JSON.parse(Buffer.from(claims!, "base64url").toString());
    changed.exp += 3600;
    expect(await refused([p, Buffer.from(JSON.stringify(changed)).toString("base64url"), sig, cert].join("."))).toMatch(/bad signature/);
    // Signed by a key whose self-made "controller" certificate is not of Groundskeeper's CA.
    expect(await refused(forged(n.workerId, robots.a1.serial, `exports/${attachment}`))).toMatch(/signer is not of our CA/);
    const sign = (c: { aud?: string; sub?: string; res?: string; ttlSeconds?: number; now?: number }) =>
      signCapability(controller, {
        aud: n.workerId,
        sub: robots.a1.serial,
        res: `exports/${attachment}`,
        ttlSeconds: 60,
        ...c,
      }).token;
    // The same claims, signed properly, are accepted (so each refusal below is for its one change).
    expect((await fetchFromNode(robots.a1, url, sign({}))).status).toBe(200);
    expect(await refused(sign({ now: Date.now() - 120_000 }))).toMatch(/token expired/);
    expect(await refused(sign({ ttlSeconds: 7200 }))).toMatch(/lifetime out of bounds/);
    expect(await refused(sign({ res: `exports/${await attachmentOf(imageA2.id)}` }))).toMatch(/another resource/);
    // The token on the URL of another attachment of the same node (the resource is the path's).
    const sibling = `${n.url}/v1/exports/${crypto.randomUUID()}/blob`;
    expect(await refused(token, robots.a1, sibling)).toMatch(/another resource/);
    // Another node: the token names the node it was signed for.
    expect(await refused(token, robots.a1, url.replace(n.url, other.url))).toMatch(/another node/);
    // Another robot of the same team presenting robot a1's token.
    expect(await refused(token, robots.a2)).toMatch(/another certificate/);
    // A valid token opens only the blob route: the node's other routes stay the controller's.
    for (const [method, path] of [
      ["GET", `/v1/exports/${attachment}`],
      ["DELETE", `/v1/exports/${attachment}`],
      ["POST", "/v1/exports"],
      ["GET", "/v1/exports?limit=10"],
    ] as const) {
      const a = await get(
        `${n.url}${path}`,
        robots.a1,
        { profile: "worker", commonName: n.workerId },
        { Authorization: `Bearer ${token}` },
        method,
      );
      expect(a.status, `${method} ${path}`).toBe(403);
      expect(a.json.error).toBe("forbidden");
    }
    // Still there, and the controller reads it with no token.
    const byController = await get(url, controller, { profile: "worker", commonName: n.workerId });
    expect(byController.status).toBe(200);
    expect(sha(byController.body)).toBe(sha(imageA.bytes));
  });

  it("the robot API refuses another team's image, an unknown one and a malformed id; no live export yet is a 503", async () => {
    const cross = await askApi(robots.b1, imageA.id);
    expect(cross.status).toBe(404);
    expect(cross.json.error).toBe(`no image ${imageA.id} in this robot's team`);
    expect(cross.json.token).toBeUndefined();
    expect((await askApi(robots.a1, imageB.id)).status).toBe(404);
    expect((await askApi(robots.a1, crypto.randomUUID())).status).toBe(404);
    expect((await askApi(robots.a1, "not-a-uuid")).status).toBe(400);
    // Its own team's image works for b1.
    expect((await askApi(robots.b1, imageB.id)).status).toBe(200);
    // Published, but not exported yet (no coordinator activation since).
    const fresh = await publishImages(db, peers, teamA, 1);
    const pending = await askApi(robots.a1, fresh.images[0]!.id);
    expect(pending.status).toBe(503);
    expect(pending.headers["retry-after"]).toBe("5");
    // A revoked robot certificate is refused by the robot API at once.
    await db.query("select gk_public.revoke_robot_certificates($1)", [robots.a2.id]);
    expect((await askApi(robots.a2, imageA.id)).status).toBe(403);
  });
});

describe("a node that stopped heartbeating", () => {
  it("its export is a 503 with Retry-After (the robot is not sent to it), and a 200 again once it heartbeats", async () => {
    const ok = await askApi(robots.a1, imageA2.id);
    expect(ok.status).toBe(200);
    const n = nodeOf(ok.json.url);
    const pid = n.proc.child.pid!;
    // The node stops (no heartbeats), and its heartbeat's expiry passes.
    process.kill(pid, "SIGSTOP");
    try {
      await db.query("update gk_public.export_nodes set expires_at = now() - interval '1 second' where worker_id = $1", [n.workerId]);
      const stale = await askApi(robots.a1, imageA2.id);
      expect(stale.status).toBe(503);
      expect(stale.headers["retry-after"]).toBe("5");
      expect(stale.json.error).toBe(`the export node of image ${imageA2.id} is not answering: try again shortly`);
      expect(stale.json.token).toBeUndefined();
      expect(stale.json.url).toBeUndefined();
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const back = await waitFor(async () => {
      const a = await askApi(robots.a1, imageA2.id);
      return a.status === 200 ? a : undefined;
    }, "the export served again after a heartbeat");
    expect(back.json.url).toBe(ok.json.url);
  });
});

describe("a revoked controller certificate", () => {
  it("its tokens are refused once the node has the CRL; the renewed controller's tokens work", async () => {
    const before = await askApi(robots.a1, imageA.id);
    expect((await fetchFromNode(robots.a1, before.json.url, before.json.token)).status).toBe(200);
    const old = (await peers.identity.current())!;
    // Deleting the controllers row revokes its certificate (docs/agent.md); the next use requests a new one.
    await db.query("delete from gk_public.controllers");
    await waitFor(async () => {
      await runJobs(db, peers.services);
      const c = await peers.identity.current();
      return c && c.certPem !== old.certPem;
    }, "a new controller certificate");
    const error = await waitFor(async () => {
      const a = await fetchFromNode(robots.a1, before.json.url, before.json.token);
      return a.status === 403 ? (a.json.error as string) : undefined;
    }, "the node refusing the revoked controller's token");
    expect(error).toBe("capability refused: signer certificate revoked");
    const after = await waitFor(async () => {
      const a = await askApi(robots.a1, imageA.id);
      return a.status === 200 && a.json.token !== before.json.token ? a : undefined;
    }, "a token from the renewed controller");
    const got = await fetchFromNode(robots.a1, after.json.url, after.json.token);
    expect(got.status).toBe(200);
    expect(sha(got.body)).toBe(sha(imageA.bytes));
  });
});

describe("gk_private.export_robot_fetch", () => {
  it("finds the image and its live export by key, among thousands with deleted history", async () => {
    const team = (await insertTeam(db, { name: "many" })).id;
    const node = await insertExportNode(db);
    const imgs = await insertImages(db, { team, count: 3000 });
    await insertExports(db, { images: imgs, state: "deleted" });
    await insertExports(db, { images: imgs, state: "live", node });
    for (const t of ["images", "exports", "export_nodes"]) await db.query(`vacuum analyze gk_public.${t}`);
    // A definer function with SET is not inlined: explain its body (as sql.test.ts does).
    const src = (await db.query("select prosrc from pg_proc where proname = 'export_robot_fetch'")).rows[0].prosrc as string;
    const sql = src
      .replaceAll("export_robot_fetch.image_id", `'${imgs[1234]!.id}'::uuid`)
      .replaceAll("export_robot_fetch.team_id", `'${team}'::uuid`);
    const plan = (await db.query(`explain (format json) ${sql}`)).rows[0]["QUERY PLAN"][0].Plan;
    const walk = (p: any): any[] => [p, ...(p.Plans ?? []).flatMap(walk)];
    const nodesOfPlan = walk(plan);
    expect(nodesOfPlan.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] !== "export_nodes")).toEqual([]);
    const used = nodesOfPlan.map((n) => n["Index Name"]).filter(Boolean);
    expect(used).toContain("exports_one_per_resource");
    expect(used.some((i: string) => i.startsWith("images_"))).toBe(true);
    const { rows } = await db.query(sql);
    expect(rows).toHaveLength(1);
    expect(rows[0].url).toMatch(/^https:/);
  });
});

/** A token with the right shape and claims, signed by a key of a self-made "controller" certificate (openssl). */
function forged(aud: string, sub: string, res: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-forged-"));
  try {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    const r = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        `/OU=controller/CN=${crypto.randomUUID()}`,
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
    return signCapability(
      { keyPem: fs.readFileSync(key, "utf8"), certPem: fs.readFileSync(cert, "utf8"), caPem },
      { aud, sub, res, ttlSeconds: 60 },
    ).token;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
