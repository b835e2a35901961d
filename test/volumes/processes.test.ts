// Collection end to end with real agent processes (and, once, a real worker process): volume
// trees built through volumes__create, owners deleted with plain SQL, the collector run, and
// after every scenario each agent's live/ compared with the database — every orphan gone from
// disk and database, nothing live destroyed. Faults: a hung agent (SIGSTOP: it accepts and never
// answers), a disk that refuses the rename (chattr +i), an agent SIGKILLed mid-destroy, two
// collectors at once, a worker process SIGKILLed mid-collection; plus leaked directories unknown
// to the database, rows stuck in creating, and volumes that vanished from disk.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { PeerClient } from "../../src/peers/client.ts";
import { VolumeAgents } from "../../src/volumes/agents.ts";
import { type CollectStatus, collect, collectDb, DEFAULT_COLLECT } from "../../src/volumes/collect.ts";
import { spawnCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertContainers, insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";
import { type AgentProcess, type Peers, setupPeers, startAgent } from "./helpers/peers.ts";

const db = await createTestDb({
  settings: {
    "groundskeeper.volumes_lease": "1 second",
    "groundskeeper.volumes_missing_grace": "0 seconds",
    "groundskeeper.volumes_creating_timeout": "1 minute",
  },
});
const team = (await insertTeam(db, { name: "builders" })).id;
const q = collectDb(db.pool);

let peers: Peers;
const agents: Record<string, AgentProcess> = {};
const creds: Record<string, string> = {};
const workerIds: Record<string, string> = {};
let client: VolumeAgents;
/** For building state (no short deadline: the machine may be slow). */
let setupClient: VolumeAgents;

/** No scenario here waits for a heartbeat: a slow one keeps the agents' background load low. */
const HEARTBEAT_MS = 2_000;

beforeAll(async () => {
  peers = await setupPeers(db);
  for (const name of ["w1", "w2"]) {
    const e = await peers.enroll(name);
    creds[name] = e.dir;
    workerIds[name] = e.workerId;
  }
  // Both agents start at once (a CLI start is the slowest part of the set-up on a loaded machine).
  await Promise.all(
    ["w1", "w2"].map(async (name) => {
      agents[name] = await startAgent(peers, creds[name]!, path.join(peers.tmp, `agent-${name}`), { heartbeatMs: HEARTBEAT_MS });
    }),
  );
  client = new VolumeAgents(peers.identity, { parallelism: 2, timeoutMs: 1_500 });
  setupClient = new VolumeAgents(peers.identity, { parallelism: 4, timeoutMs: 60_000 });
});

afterAll(async () => {
  client?.close();
  setupClient?.close();
  for (const a of Object.values(agents)) {
    a.proc.child.kill("SIGCONT");
    await a.proc.stop("SIGKILL");
  }
  for (const w of Object.keys(agents)) execFileSync("chattr", ["-i", path.join(agents[w]!.store, "live")]);
  await peers?.close();
});

beforeEach(async () => {
  // Each scenario starts from no volumes (the previous one left a consistent state).
  await db.query("delete from gk_public.containers");
  await collectUntilClean();
});

/**
 * Containers (one build each) and their volumes: rows inserted as creating, then made on the agent
 * by volumes__create (`viaTasks`), or — faster, for scenarios about destroying — made over HTTP
 * and recorded with volume_created, as the task does.
 */
async function tree(worker: string, parents: number, children: number, viaTasks = false): Promise<{ parents: Vol[]; children: Vol[] }> {
  const { rows: builds } = await db.query("insert into gk_public.builds (team_id) select $1 from generate_series(1, $2) returning id", [
    team,
    parents + children,
  ]);
  const { rows: cs } = await db.query(
    "insert into gk_public.containers (worker_id, build_id) select $1, b from unnest($2::bigint[]) b returning id",
    [workerIds[worker], builds.map((b) => b.id)],
  );
  const make = async (vols: Vol[], parentOf: (i: number) => string | undefined) => {
    if (viaTasks) return runJobs(db, peers.services);
    const c = await setupClient.client({ id: workerIds[worker]!, name: worker, address: agents[worker]!.url });
    await Promise.all(
      vols.map((v, i) => c.request("POST", "/v1/volumes", { handle: v.handle, ...(parentOf(i) ? { parent: parentOf(i) } : {}) })),
    );
    await db.query("select gk_private.volume_created(id) from unnest($1::bigint[]) id", [vols.map((v) => v.id)]);
    await db.query(
      "select graphile_worker.permanently_fail_jobs(array(select id from graphile_worker.jobs where task_identifier = 'volumes__create'), 'made by the test')",
    );
  };
  const ps = await insertVols(
    worker,
    cs.slice(0, parents).map((c) => c.id),
  );
  await make(ps, () => undefined);
  // Something in each parent, so a child is a real copy.
  for (const p of ps) fs.writeFileSync(path.join(agents[worker]!.store, "live", p.handle, "data"), p.handle);
  const kids = await insertVols(
    worker,
    cs.slice(parents).map((c) => c.id),
    ps.slice(0, children).map((p) => p.id),
  );
  await make(kids, (i) => ps[i]!.handle);
  return { parents: ps, children: kids };
}

interface Vol {
  id: number;
  handle: string;
  container: number;
}

async function insertVols(worker: string, containers: number[], parents?: number[]): Promise<Vol[]> {
  const { rows } = await db.query(
    `insert into gk_public.volumes (worker_id, container_id, parent_id, parent_state)
     select $1, c, p, case when p is not null then 'created' end from unnest($2::bigint[], $3::bigint[]) with ordinality x(c, p, o) order by o
     returning id, handle::text, container_id`,
    [workerIds[worker], containers, parents ?? containers.map(() => null)],
  );
  return rows.map((r) => ({ id: Number(r.id), handle: r.handle, container: Number(r.container_id) }));
}

async function orphan(vols: Vol[]): Promise<void> {
  await db.query("delete from gk_public.containers where id = any($1::bigint[])", [vols.map((v) => v.container)]);
}

function run(opts: Partial<typeof DEFAULT_COLLECT> = {}, agentsClient = client): Promise<CollectStatus> {
  return collect(q, agentsClient, { ...DEFAULT_COLLECT, batchSize: 20, reportTimeoutMs: 1_500, ...opts });
}

/** The handles each destroy call of these agents' clients carried. */
function recording(agents: VolumeAgents): { agents: VolumeAgents; sent: string[] } {
  const sent: string[] = [];
  const clientOf = agents.client.bind(agents);
  const wrapped = new WeakSet<PeerClient>();
  agents.client = async (w) => {
    const c = await clientOf(w);
    if (!wrapped.has(c)) {
      wrapped.add(c);
      const request = c.request.bind(c);
      c.request = ((method: string, p: string, body?: unknown, t?: number) => {
        if (p === "/v1/volumes/destroy") sent.push(...(body as { handles: string[] }).handles);
        return request(method, p, body, t);
      }) as typeof c.request;
    }
    return c;
  };
  return { agents, sent };
}

const ORPHANS = `select count(*)::int as n from gk_public.volumes v
  where v.container_id is null and v.worker_resource_cache_id is null and v.worker_base_resource_type_id is null
    and v.worker_task_cache_id is null and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)`;

/**
 * Collects until the database is clean: every row created and reported, no orphan. Between rounds
 * it waits (polling) for leases a killed collector left, and makes backed-off destroys due now.
 */
async function collectUntilClean(rounds = 8): Promise<CollectStatus[]> {
  const out: CollectStatus[] = [];
  for (let i = 0; i < rounds; i++) {
    out.push(await run());
    const { rows } = await db.query(
      `select (select count(*) from gk_public.volumes where state <> 'created' or missing_since is not null)
            + (${ORPHANS}) as n`,
    );
    if (Number(rows[0].n) === 0) return out;
    await waitFor(async () => {
      const { rows: held } = await db.query("select count(*)::int as n from gk_public.workers where collector_lease_until > now()");
      return held[0].n === 0;
    }, "collector leases released or expired");
    await db.query("update gk_public.volumes set next_attempt_at = now() where state = 'destroying'");
  }
  throw new Error(`not clean after ${rounds} collections: ${JSON.stringify(out.at(-1))}`);
}

/** Each agent's live/ equals the worker's created volumes; no orphan is left anywhere. */
async function expectConsistent(): Promise<void> {
  for (const [name, a] of Object.entries(agents)) {
    const { rows } = await db.query("select handle::text, state from gk_public.volumes where worker_id = $1 order by handle", [
      workerIds[name],
    ]);
    expect(rows.filter((r) => r.state !== "created")).toEqual([]);
    expect(a.live()).toEqual(rows.map((r) => r.handle).sort());
    expect(fs.readdirSync(path.join(a.store, "init"))).toEqual([]);
  }
  const { rows: orphans } = await db.query(ORPHANS);
  expect(orphans[0].n).toBe(0);
}

describe("collection with real agents", () => {
  it("destroys every orphan tree (children first), adopts leaked directories, completes or fails stuck creations, drops vanished volumes", async () => {
    const t1 = await tree("w1", 30, 15, true);
    const t2 = await tree("w2", 30, 15);
    // Orphaned: 10 parents with their children, 10 parents without children, 3 children alone.
    const gone1 = [...t1.parents.slice(0, 10), ...t1.children.slice(0, 10), ...t1.parents.slice(15, 25), ...t1.children.slice(12, 15)];
    await orphan(gone1);
    await orphan(t2.parents.slice(20, 30));
    // A directory the database never heard of (a leak), one row stuck in creating whose volume is
    // live and one whose volume never appeared, and a created volume that vanished from disk.
    const leaked = "0f0f0f0f-0000-4000-8000-000000000001";
    fs.mkdirSync(path.join(agents.w1!.store, "live", leaked));
    const stuck = await insertVols("w1", [t1.parents[26]!.container, t1.parents[27]!.container]);
    await db.query(
      "select graphile_worker.permanently_fail_jobs(array(select id from graphile_worker.jobs where task_identifier = 'volumes__create'), 'crashed')",
    );
    await db.query("update gk_public.volumes set state_changed_at = now() - interval '1 hour' where id = any($1::bigint[])", [
      stuck.map((s) => s.id),
    ]);
    fs.mkdirSync(path.join(agents.w1!.store, "live", stuck[0]!.handle));
    const vanished = t2.parents[0]!;
    fs.rmSync(path.join(agents.w2!.store, "live", vanished.handle), { recursive: true });

    const [first] = await collectUntilClean();
    expect(first).toMatchObject({ unknown: 1, completed: 1, creating_failed: 1, errors: [] });
    expect(first!.marked).toBe(3 + 10 + 10 + 10); // leaves only: children alone, lone parents (w1, w2)
    await expectConsistent();
    const { rows } = await db.query("select handle::text from gk_public.volumes where handle = any($1::uuid[])", [
      [...gone1.map((v) => v.handle), leaked, stuck[1]!.handle, vanished.handle, t2.children[0]!.handle],
    ]);
    // The vanished parent went with its child (its copy was still on disk: adopted, destroyed).
    expect(rows.map((r) => r.handle)).toEqual([]);
    expect(agents.w1!.live()).toContain(stuck[0]!.handle);
    expect(agents.w1!.live()).toContain(t1.parents[12]!.handle);
  });

  it("an agent that hangs (accepts, never answers) costs its own worker a deadline per call; the other is collected", async () => {
    const t1 = await tree("w1", 20, 0);
    const t2 = await tree("w2", 20, 0);
    agents.w2!.proc.child.kill("SIGSTOP");
    try {
      await orphan([...t1.parents.slice(0, 10), ...t2.parents.slice(0, 10)]);
      const s = await run();
      expect(s.errors.map((e) => e.item)).toEqual(["w2"]);
      expect(s.errors[0]!.error).toMatch(/no answer within/);
      expect(agents.w1!.live()).toHaveLength(10);
      const { rows } = await db.query("select count(*)::int as n from gk_public.volumes where worker_id = $1 and state = 'destroying'", [
        workerIds.w2,
      ]);
      expect(rows[0].n).toBe(10);
    } finally {
      agents.w2!.proc.child.kill("SIGCONT");
    }
    await collectUntilClean();
    await expectConsistent();
  });

  it("a disk that refuses the rename keeps the volume live and whole, shows the refusal in the bin, and is retried once fixed", async () => {
    const t1 = await tree("w1", 6, 0);
    const live = path.join(agents.w1!.store, "live");
    execFileSync("chattr", ["+i", live]);
    try {
      await orphan(t1.parents.slice(0, 4));
      const s = await run();
      expect(s.destroy_failed).toBe(4);
      expect(agents.w1!.live()).toHaveLength(6);
      for (const v of t1.parents.slice(0, 4)) expect(fs.readFileSync(path.join(live, v.handle, "data"), "utf8")).toBe(v.handle);
      const { rows } = await db.query("select ref, attempts, last_error from gk_public.bin where kind = 'volume' order by ref");
      expect(rows).toHaveLength(4);
      expect(rows[0].attempts).toBe(1);
      expect(rows[0].last_error).toMatch(/EPERM|operation not permitted/i);
    } finally {
      execFileSync("chattr", ["-i", live]);
    }
    await db.query("select gk_public.retry_bin_item('volume', $1)", [t1.parents[0]!.handle]);
    const retried = await run();
    expect(retried.destroyed).toBeGreaterThanOrEqual(1);
    await collectUntilClean();
    await expectConsistent();
  });

  it("an agent SIGKILLed mid-destroy and started again: every orphan goes, nothing live is lost", async () => {
    const t1 = await tree("w1", 120, 0);
    await orphan(t1.parents.slice(0, 100));
    const a = agents.w1!;
    const running = run({ batchSize: 10 }, new VolumeAgents(peers.identity, { parallelism: 1, timeoutMs: 1_500 }));
    await waitFor(() => Promise.resolve(a.live().length < 110), "destroys under way", 20_000);
    a.proc.child.kill("SIGSTOP"); // frozen with a destroy call in flight
    a.proc.child.kill("SIGKILL");
    await a.proc.stop("SIGKILL");
    const s = await running;
    expect(s.errors.map((e) => e.item)).toEqual(["w1"]);
    expect(a.live().length).toBeGreaterThan(20);
    agents.w1 = await startAgent(peers, creds.w1!, a.dataDir, { heartbeatMs: HEARTBEAT_MS });
    await collectUntilClean();
    await expectConsistent();
    expect(agents.w1.live().sort()).toEqual(
      t1.parents
        .slice(100)
        .map((v) => v.handle)
        .sort(),
    );
  });

  it("a leaked directory the report adopts is destroyed in the same activation as the due destroys before it", async () => {
    const t1 = await tree("w1", 4, 0);
    await orphan(t1.parents.slice(0, 2));
    const leaked = "0f0f0f0f-0000-4000-8000-000000000002";
    fs.mkdirSync(path.join(agents.w1!.store, "live", leaked));
    const s = await run();
    expect(s).toMatchObject({ marked: 2, unknown: 1, destroyed: 3, errors: [] });
    expect(agents.w1!.live()).not.toContain(leaked);
    await expectConsistent();
  });

  it("two collectors at once share the work: a worker is visited by one of them at a time, no handle is sent by both", async () => {
    const t1 = await tree("w1", 40, 10);
    const t2 = await tree("w2", 40, 10);
    await orphan([...t1.parents.slice(0, 30), ...t1.children, ...t2.parents.slice(10, 40), ...t2.children]);
    const one = recording(new VolumeAgents(peers.identity, { parallelism: 2, timeoutMs: 1_500 }));
    const two = recording(new VolumeAgents(peers.identity, { parallelism: 2, timeoutMs: 1_500 }));
    const [a, b] = await Promise.all([run({}, one.agents), run({}, two.agents)]);
    one.agents.close();
    two.agents.close();
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
    expect(one.sent.filter((h) => two.sent.includes(h))).toEqual([]);
    expect(one.sent.length + two.sent.length).toBe(80); // every orphan, parents after their children
    await expectConsistent();
  });

  it("a collector whose mark meets another's uncommitted mark waits for it, then destroys what that one marked", async () => {
    const t1 = await tree("w1", 8, 0);
    await orphan(t1.parents.slice(0, 6));
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query("begin");
      expect((await other.query("select gk_private.volumes_mark_orphans() as n")).rows[0].n).toBe(6);
      let settled = false;
      const running = run().finally(() => {
        settled = true;
      });
      await waitFor(async () => {
        if (settled) return true;
        const { rows } = await db.query(
          "select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock' and wait_event = 'advisory'",
          [db.name],
        );
        return rows[0].n > 0;
      }, "the collector waiting for the other mark");
      await other.query("commit");
      const s = await running;
      // Before, it found nothing due (the marks were not committed yet), skipped the rows the other
      // mark held, and left them for another activation while holding the worker's lease.
      expect(s).toMatchObject({ marked: 0, destroyed: 6, errors: [] });
    } finally {
      await other.end();
    }
    await expectConsistent();
  });

  it("create-child racing destroy-parent: the composite key decides per parent, the loser gets a clear error, every winner is a whole copy", async () => {
    const t1 = await tree("w1", 32, 0);
    const owners = await insertContainers(db, { worker: workerIds.w1!, count: 32 });
    type Outcome = { i: number; id: number } | { i: number; error: { code: string; message: string } };
    const createChild = (i: number, on: { query: typeof db.query } = db): Promise<Outcome> =>
      on.query("select (gk_public.create_volume('w1', $1, container_id => $2)).id", [t1.parents[i]!.handle, owners[i]]).then(
        (r) => ({ i, id: Number(r.rows[0].id) }),
        (e: { code: string; message: string }) => ({ i, error: e }),
      );
    const range = (from: number) => Array.from({ length: 8 }, (_, k) => from + k);
    const outcomes: Outcome[] = [];
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      // 0-7: the child is committed first; the parent is kept though its owner goes.
      outcomes.push(...(await Promise.all(range(0).map((i) => createChild(i)))));
      // 8-15: the children are being inserted (uncommitted) while the collector runs: the mark
      // skips the parents their key holds; once committed, the parents have children.
      await other.query("begin");
      for (const i of range(8)) outcomes.push(await createChild(i, other));
      await orphan(t1.parents.slice(0, 16));
      expect((await run()).errors).toEqual([]);
      await other.query("commit");
      // 16-23: the mark is under way (uncommitted) when the children are asked for: each insert
      // waits on its parent's key, and is refused once the mark commits.
      await orphan(t1.parents.slice(16, 24));
      await other.query("begin");
      expect((await other.query("select gk_private.volumes_mark_orphans() as n")).rows[0].n).toBe(8);
      const waiting = Promise.all(range(16).map((i) => createChild(i)));
      await waitFor(async () => {
        const { rows } = await db.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = $1", [
          db.name,
        ]);
        return rows[0].n === 8;
      }, "the inserts waiting on their parents' key");
      await other.query("commit");
      outcomes.push(...(await waiting));
    } finally {
      await other.end();
    }
    // 24-31: orphaned, then the collector and the children at once (either may win a parent).
    await orphan(t1.parents.slice(24));
    const collecting = run();
    outcomes.push(...(await Promise.all(range(24).map((i) => createChild(i)))));
    expect((await collecting).errors).toEqual([]);
    await runJobs(db, peers.services); // volumes__create makes the winners on the agent: copies of their parents
    await collectUntilClean();
    await expectConsistent();

    const live = agents.w1!.live();
    for (const o of outcomes) {
      const parent = t1.parents[o.i]!;
      if ("id" in o) {
        const { rows } = await db.query("select handle::text, state from gk_public.volumes where id = any($1::bigint[]) order by id", [
          [o.id, parent.id],
        ]);
        expect(rows.map((r) => r.state)).toEqual(["created", "created"]);
        expect(fs.readFileSync(path.join(agents.w1!.store, "live", rows[1].handle, "data"), "utf8")).toBe(parent.handle);
        expect(live).toContain(parent.handle);
      } else {
        // Refused while the parent is destroying (the check, or the key when the mark won the
        // race), or not found once it is gone.
        expect(o.error.message).toMatch(
          new RegExp(
            `^parent volume ${parent.handle} (is (being destroyed|destroying): a copy-on-write child needs a created parent|not found on worker w1)$`,
          ),
        );
        expect(o.error.code).toBe(/not found/.test(o.error.message) ? "P0002" : "55000");
        expect(live).not.toContain(parent.handle);
      }
    }
    expect(outcomes.filter((o) => o.i < 16 && "id" in o)).toHaveLength(16);
    const refused = outcomes.filter((o) => o.i >= 16 && o.i < 24).map((o) => ("error" in o ? o.error.message : "created"));
    expect(refused).toEqual(
      range(16).map((i) => `parent volume ${t1.parents[i]!.handle} is being destroyed: a copy-on-write child needs a created parent`),
    );
  });

  it("a worker process SIGKILLed mid-collection: another worker finishes it, nothing lost", async () => {
    const t1 = await tree("w1", 60, 0);
    await orphan(t1.parents.slice(0, 50));
    const env = peers.workerEnv({ GK_VOLUMES_CALL_TIMEOUT_MS: "60000", GK_VOLUMES_PARALLELISM: "1" });
    const first = spawnCli(["worker", "--no-cron"], env);
    try {
      await waitFor(() => Promise.resolve(/"worker running"/.test(first.stderr())), "worker running", 60_000);
      // Freeze the agent while the worker's collector has a call in flight, then kill the worker.
      await db.query("select gk_public.activate_reconciler('volumes__collect')");
      await waitFor(async () => {
        const { rows } = await db.query("select collector_lease_until is not null as held from gk_public.workers where id = $1", [
          workerIds.w1,
        ]);
        return rows[0].held;
      }, "the collector holds w1");
      agents.w1!.proc.child.kill("SIGSTOP");
      await first.stop("SIGKILL");
    } finally {
      agents.w1!.proc.child.kill("SIGCONT");
    }
    // What the platform's liveness sweep (queue__reap_workers) does once the dead pool's heartbeat
    // has expired: its jobs are released.
    await db.query(
      "select gk_private.queue_workers_release(array(select distinct locked_by from graphile_worker._private_jobs where locked_by is not null), 'killed by the test')",
    );
    // Another worker (graphile-worker in this process: a second CLI process would prove nothing
    // more and cost a start) runs the collector once the dead collector's lease has run out.
    await waitFor(async () => {
      const { rows } = await db.query("select collector_lease_until < now() as expired from gk_public.workers where id = $1", [
        workerIds.w1,
      ]);
      return rows[0].expired !== false;
    }, "the dead collector's lease runs out");
    await db.query("select gk_public.activate_reconciler('volumes__collect')");
    await runJobs(db, peers.services);
    const { rows: left } = await db.query("select count(*)::int as n from gk_public.volumes where worker_id = $1", [workerIds.w1]);
    expect(left[0].n).toBe(10);
    await collectUntilClean();
    await expectConsistent();
    expect(agents.w1!.live().sort()).toEqual(
      t1.parents
        .slice(50)
        .map((v) => v.handle)
        .sort(),
    );
  });
});
