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
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { VolumeAgents } from "../../src/volumes/agents.ts";
import { type CollectStatus, collect, collectDb, DEFAULT_COLLECT } from "../../src/volumes/collect.ts";
import { spawnCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";
import { type AgentProcess, type Peers, setupPeers, startAgent } from "./helpers/peers.ts";

const db = await createTestDb();
await db.query(`alter database ${db.name} set groundskeeper.volumes_lease = '1 second'`);
await db.query(`alter database ${db.name} set groundskeeper.volumes_missing_grace = '0 seconds'`);
await db.query(`alter database ${db.name} set groundskeeper.volumes_creating_timeout = '1 minute'`);
const team = (await insertTeam(db, { name: "builders" })).id;
const q = collectDb(db.pool);

let peers: Peers;
const agents: Record<string, AgentProcess> = {};
const creds: Record<string, string> = {};
const workerIds: Record<string, string> = {};
let client: VolumeAgents;
/** For building state (no short deadline: the machine may be slow). */
let setupClient: VolumeAgents;

beforeAll(async () => {
  peers = await setupPeers(db);
  for (const name of ["w1", "w2"]) {
    const e = await peers.enroll(name);
    creds[name] = e.dir;
    workerIds[name] = e.workerId;
    agents[name] = await startAgent(peers, e.dir, path.join(peers.tmp, `agent-${name}`));
  }
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

async function collectUntilClean(rounds = 6): Promise<CollectStatus[]> {
  const out: CollectStatus[] = [];
  for (let i = 0; i < rounds; i++) {
    const s = await run();
    out.push(s);
    const { rows } = await db.query("select count(*)::int as n from gk_public.volumes where state in ('destroying', 'failed')");
    if (rows[0].n === 0 && s.marked === 0 && s.unknown === 0 && s.missing === 0) return out;
    await new Promise((r) => setTimeout(r, 1100)); // leases and backoffs (1 s in this database)
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
  const { rows: orphans } = await db.query(
    `select count(*)::int as n from gk_public.volumes v
      where v.container_id is null and v.worker_resource_cache_id is null and v.worker_base_resource_type_id is null
        and v.worker_task_cache_id is null and not exists (select 1 from gk_public.volumes c where c.parent_id = v.id)`,
  );
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
    agents.w1 = await startAgent(peers, creds.w1!, a.dataDir);
    await collectUntilClean();
    await expectConsistent();
    expect(agents.w1.live().sort()).toEqual(
      t1.parents
        .slice(100)
        .map((v) => v.handle)
        .sort(),
    );
  });

  it("two collectors at once share the work: each worker is visited by one of them", async () => {
    const t1 = await tree("w1", 40, 10);
    const t2 = await tree("w2", 40, 10);
    await orphan([...t1.parents.slice(0, 30), ...t1.children, ...t2.parents.slice(10, 40), ...t2.children]);
    const other = new VolumeAgents(peers.identity, { parallelism: 2, timeoutMs: 1_500 });
    const [a, b] = await Promise.all([run(), run({}, other)]);
    other.close();
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
    expect(a.workers_busy + b.workers_busy).toBeLessThanOrEqual(2);
    await collectUntilClean();
    await expectConsistent();
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
    // What the platform's liveness sweep does a minute after a worker stops heartbeating.
    await db.query(
      "select graphile_worker.force_unlock_workers(array(select distinct locked_by from graphile_worker._private_jobs where locked_by is not null))",
    );
    const second = spawnCli(["worker", "--no-cron"], env);
    try {
      await waitFor(() => Promise.resolve(/"worker running"/.test(second.stderr())), "second worker running", 60_000);
      await new Promise((r) => setTimeout(r, 1100)); // the dead collector's lease runs out
      await db.query("select gk_public.activate_reconciler('volumes__collect')");
      await waitFor(
        async () => {
          const { rows } = await db.query("select count(*)::int as n from gk_public.volumes where worker_id = $1", [workerIds.w1]);
          return rows[0].n === 10;
        },
        "the orphans gone",
        30_000,
      );
    } finally {
      await second.stop("SIGTERM");
    }
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
