// The export coordinator end to end with real export-node processes (and, once, a real worker
// process): images published and deleted, a node expunged, a node SIGKILLed with an attach in
// flight (restarted with its storage: what it held is still served), a worker SIGKILLed
// mid-saga, a node restarted without its storage (404s: lost exports re-created), two
// coordinators at once, nodes whose disk refuses writes (500s). After each: exactly one live export per existing image, on an in-service node, served
// with the image's sha256, and nothing left in the bin.
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeerClient, PeerHttpError } from "../../src/peers/client.ts";
import { unlockWorkers } from "../../src/worker/queue.ts";
import { spawnCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs } from "../helpers/jobs.ts";
import { type Peers, setupPeers } from "../helpers/peers.ts";
import { waitFor } from "../helpers/wait.ts";
import { coordinateOnce } from "./helpers/coordinate.ts";
import { type NodeProcess, publishImages, runNode } from "./helpers/nodes.ts";

const db = await createTestDb();
const team = (await insertTeam(db, { name: "exporters" })).id;
let peers: Peers;
const nodes: Record<string, NodeProcess> = {};
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  peers = await setupPeers(db, "exports");
  // Enrolled one by one (each runs the issuing jobs), started together.
  const enrolled = [];
  for (const name of ["a", "b", "c"]) {
    const e = await peers.enroll(name);
    enrolled.push({ name, workerId: e.workerId, creds: e.dir, dataDir: path.join(peers.tmp, `node-${name}`) });
  }
  for (const n of await Promise.all(enrolled.map((e) => runNode(peers, e)))) nodes[n.name] = n;
});

afterAll(async () => {
  for (const n of Object.values(nodes)) {
    n.proc.child.kill("SIGCONT");
    await n.proc.stop("SIGKILL");
    execFileSync("chattr", ["-i", path.join(n.dataDir, "exports", "attachments")]);
  }
  await peers?.close();
});

/** What breaks "one live export per existing image on an in-service node, nothing pending". */
async function problems(): Promise<string[]> {
  const { rows } = await db.query(
    `select i.id::text as image,
            count(e.id) filter (where e.state = 'live' and n.state = 'in_service' and e.delete_requested_at is null)::int as live,
            count(e.id) filter (where e.state <> 'deleted')::int as records
       from gk_public.images i
       left join gk_public.exports e on e.resource_type = 'image' and e.resource_id = i.id
       left join gk_public.export_nodes n on n.id = e.node_id
      group by i.id`,
  );
  const out = rows.filter((r) => r.live !== 1 || r.records !== 1).map((r) => `image ${r.image}: ${r.live} live of ${r.records} records`);
  const bin = await db.query("select ref, last_error from gk_public.bin where kind = 'export'");
  out.push(...bin.rows.map((r) => `pending export ${r.ref}${r.last_error ? ` (${r.last_error})` : ""}`));
  return out;
}

/** Runs the coordinator and the sagas it starts until the invariant holds. */
async function converge(timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await db.query("select gk_public.activate_reconciler('exports__coordinate')");
    await runJobs(db, peers.services);
    const bad = await problems();
    if (bad.length === 0) return;
    if (Date.now() > deadline) throw new Error(`exports did not converge: ${bad.slice(0, 5).join("; ")}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Every live export downloads from its node with its image's sha256; returns the nodes used. */
async function expectServed(): Promise<Set<string>> {
  const { rows } = await db.query(
    `select e.url, w.id as worker_id, i.sha256, w.name from gk_public.exports e
       join gk_public.images i on i.id = e.resource_id
       join gk_public.export_nodes n on n.id = e.node_id join gk_public.workers w on w.id = n.worker_id
      where e.state = 'live'`,
  );
  const used = new Set<string>();
  for (const r of rows) {
    expect(sha(await download(r.url, r.worker_id))).toBe(r.sha256);
    used.add(r.name);
  }
  return used;
}

async function download(url: string, workerId: string): Promise<Buffer> {
  const u = new URL(url);
  const c = new PeerClient(u.origin, (await peers.identity.current())!, { profile: "worker", commonName: workerId, timeoutMs: 10_000 });
  try {
    return await c.download(u.pathname);
  } finally {
    c.close();
  }
}

/**
 * Expiries the nodes' heartbeats cannot move: a heartbeat a node sent just before its SIGSTOP
 * can land after the UPDATE that expired it (the gateway runs in this process, and a beat is
 * every 300 ms), which made a frozen node placeable again and its attach hang for the 120 s
 * attach timeout (seen under load as a 60 s test timeout). A trigger that exists only in this
 * test holds each pinned node's expiry while it is pinned; the real heartbeat path is unchanged.
 */
await db.query(`
  create table public.test_pinned_expiry (worker_id uuid primary key, fresh boolean not null);
  create function public.test_pin_expiry() returns trigger language plpgsql security definer
  set search_path = pg_catalog as $$
  declare v_fresh boolean;
  begin
    select p.fresh into v_fresh from public.test_pinned_expiry p where p.worker_id = new.worker_id;
    if found then
      new.expires_at := case when v_fresh then now() + interval '1 minute' else now() - interval '1 second' end;
    end if;
    return new;
  end $$;
  create trigger _999_test_pin_expiry before insert or update on gk_public.export_nodes
    for each row when (new.worker_id is not null) execute function public.test_pin_expiry();`);

/**
 * Freezes every node (SIGSTOP: a frozen node accepts connections and never answers, and sends no
 * heartbeat) and lets new exports land only on `target`, whose expiry is pinned ahead while the
 * others' are pinned past (public.test_pin_expiry above). The returned thaw unpins and resumes.
 */
async function onlyPlaceOn(target: NodeProcess, opts: { freezeTarget?: boolean } = {}): Promise<() => Promise<void>> {
  for (const n of Object.values(nodes)) if (n !== target || opts.freezeTarget !== false) n.proc.child.kill("SIGSTOP");
  const ids = Object.values(nodes).map((n) => n.workerId);
  await db.query(
    `insert into public.test_pinned_expiry (worker_id, fresh) select w, w = $2 from unnest($1::uuid[]) w
       on conflict (worker_id) do update set fresh = excluded.fresh`,
    [ids, target.workerId],
  );
  await db.query("update gk_public.export_nodes set expires_at = expires_at where worker_id = any($1::uuid[])", [ids]);
  return async () => {
    await db.query("delete from public.test_pinned_expiry");
    for (const n of Object.values(nodes)) n.proc.child.kill("SIGCONT");
  };
}

/**
 * A running create saga that a runner drives (it holds the saga's advisory lock, src/worker/saga.ts).
 * Its record was written already taken and placed, so its take only reads it and the runner goes
 * on to the attach; the row records that progress only with live (SagaStep.recordWithNext), so
 * the lock is what shows a saga in its attach.
 */
async function drivenCreateSaga(): Promise<string | undefined> {
  const { rows } = await db.query(
    `select s.id from gk_public.sagas s
       join pg_locks l on l.locktype = 'advisory' and l.classid = 47110040 and l.objsubid = 2
        and l.objid = (hashtext(s.id::text)::bigint & 4294967295)::oid
      where s.name = 'exports__create' and s.state = 'running' and l.granted`,
  );
  return rows[0]?.id;
}

async function nodeIdOf(n: NodeProcess): Promise<string> {
  return (await db.query("select id from gk_public.export_nodes where worker_id = $1", [n.workerId])).rows[0].id;
}

describe("export coordinator end to end", () => {
  it("published images go live and downloadable; a deleted image's export is deleted and no longer served", async () => {
    await publishImages(db, peers, team, 6);
    await db.query("select gk_public.activate_reconciler('exports__coordinate')");
    await runJobs(db, peers.services);
    const { rows: acts } = await db.query("select details from gk_public.activations where task = 'exports__coordinate' order by id");
    expect(acts[0].details).toMatchObject({ requested: 6, create_invoked_ok: 6, delete_invoked_ok: 0, errors: [] });
    await converge();
    expect((await expectServed()).size).toBeGreaterThan(1); // spread over nodes

    const { rows: doomed } = await db.query(
      `select e.url, e.attachment_id, w.id as worker_id, i.id as image from gk_public.exports e
         join gk_public.images i on i.id = e.resource_id join gk_public.export_nodes n on n.id = e.node_id
         join gk_public.workers w on w.id = n.worker_id where e.state = 'live' order by i.id limit 2`,
    );
    await db.query("delete from gk_public.images where id = any($1)", [doomed.map((d) => d.image)]);
    await db.query("select gk_public.activate_reconciler('exports__coordinate')");
    await runJobs(db, peers.services);
    expect(
      (await db.query("select details from gk_public.activations where task = 'exports__coordinate' order by id desc limit 2")).rows.map(
        (r) => r.details.marked_for_deletion + r.details.delete_invoked_ok,
      ),
    ).toContain(4);
    await converge();
    for (const d of doomed) {
      const e = await download(d.url, d.worker_id).catch((err) => err);
      expect(e).toBeInstanceOf(PeerHttpError);
      expect((e as PeerHttpError).status).toBe(404);
    }
    const { rows: gone } = await db.query("select state from gk_public.exports where resource_id = any($1)", [doomed.map((d) => d.image)]);
    expect(gone.map((g) => g.state)).toEqual(["deleted", "deleted"]);
    await expectServed();
  });

  it("an image deleted before its export was created goes straight to deleted (bypassed)", async () => {
    const { images } = await publishImages(db, peers, team, 1);
    const rec = await db.query("select id from gk_public.request_export('image', $1)", [images[0]!.id]);
    await db.query("delete from gk_public.images where id = $1", [images[0]!.id]);
    await converge();
    expect((await db.query("select state from gk_public.exports where id = $1", [rec.rows[0].id])).rows[0].state).toBe("deleted");
    const { rows } = await db.query(
      "select sum((details->>'bypassed')::int)::int as n from gk_public.activations where task = 'exports__coordinate' and details ? 'bypassed'",
    );
    expect(rows[0].n).toBeGreaterThanOrEqual(1);
  });

  it("two coordinators at once: one record per image, duplicate sagas unwind at take", async () => {
    await publishImages(db, peers, team, 4);
    const run = () => coordinateOnce(db, peers.services);
    const [x, y] = await Promise.all([run(), run()]);
    expect(x.requested + y.requested).toBe(4);
    const again = await Promise.all([run(), run()]); // nothing new while their sagas are queued
    expect(again.map((s) => s.create_invoked_ok)).toEqual([0, 0]);
    await converge();
    await expectServed();
  });

  it("nodes whose disk refuses writes answer 500s: nothing goes live, the records wait visibly, then they go live", async () => {
    const dirs = Object.values(nodes).map((n) => path.join(n.dataDir, "exports", "attachments"));
    for (const d of dirs) execFileSync("chattr", ["+i", d]);
    const { images } = await publishImages(db, peers, team, 2);
    try {
      for (let i = 0; i < 2; i++) {
        await db.query("select gk_public.activate_reconciler('exports__coordinate')");
        await runJobs(db, peers.services);
      }
      const { rows } = await db.query(
        "select e.state, b.attempts, b.last_error from gk_public.exports e join gk_public.bin b on b.kind = 'export' and b.ref = e.id::text where e.resource_id = any($1)",
        [images.map((i) => i.id)],
      );
      expect(rows).toHaveLength(2);
      for (const r of rows) {
        expect(r).toMatchObject({ state: "requested" });
        expect(r.attempts).toBeGreaterThanOrEqual(1);
        expect(r.last_error).toMatch(/500/);
      }
    } finally {
      for (const d of dirs) execFileSync("chattr", ["-i", d]);
    }
    await converge();
    await expectServed();
  });

  it("an expunged node's exports are re-homed on the others, and it no longer serves them", async () => {
    const a = nodes.a!;
    const id = await nodeIdOf(a);
    // Placement is random: make sure a holds some.
    const thaw = await onlyPlaceOn(a, { freezeTarget: false });
    try {
      await publishImages(db, peers, team, 2);
      await db.query("select gk_public.activate_reconciler('exports__coordinate')");
      await runJobs(db, peers.services);
    } finally {
      await thaw();
    }
    const before = (await db.query("select count(*)::int as n from gk_public.exports where node_id = $1 and state = 'live'", [id])).rows[0]
      .n;
    expect(before).toBeGreaterThan(0);
    await db.query("select gk_public.expunge_export_node($1)", [id]);
    await converge();
    expect(
      (await db.query("select count(*)::int as n from gk_public.exports where node_id = $1 and state <> 'deleted'", [id])).rows[0].n,
    ).toBe(0);
    expect(a.attachments()).toEqual([]);
    const used = await expectServed();
    expect(used.has("a")).toBe(false);
    const { rows } = await db.query(
      "select max((details->>'marked_for_deletion')::int)::int as n from gk_public.activations where task = 'exports__coordinate' and started_at > now() - interval '1 minute'",
    );
    expect(rows[0].n).toBe(before);
  });

  it("a node SIGKILLed with an attach in flight: the saga unwinds once the node is back, the export lands", async () => {
    const b = nodes.b!;
    const thaw = await onlyPlaceOn(b); // b accepts the attach and never answers
    try {
      await publishImages(db, peers, team, 1);
      await db.query("select gk_public.activate_reconciler('exports__coordinate')");
      const running = runJobs(db, peers.services);
      await waitFor(drivenCreateSaga, "a create saga in attach");
      await b.proc.stop("SIGKILL");
      await running;
      nodes.b = await runNode(peers, b);
    } finally {
      await thaw();
    }
    await converge();
    await expectServed();
    const { rows } = await db.query("select count(*)::int as n from gk_public.saga_events where event = 'failed' and step_name = 'attach'");
    expect(rows[0].n).toBeGreaterThanOrEqual(1);
  });

  it("a worker process SIGKILLed mid-saga: another worker resumes it and the export lands", async () => {
    const c = nodes.c!;
    const worker = spawnCli(["worker", "--no-cron"], peers.workerEnv({ GK_EXPORTS_ATTACH_TIMEOUT_MS: "60000" }));
    let sagaId: string;
    let thaw = async () => {};
    try {
      await waitFor(() => Promise.resolve(/"worker running"/.test(worker.stderr())), "worker running", 60_000);
      thaw = await onlyPlaceOn(c); // the worker's attach hangs there
      await publishImages(db, peers, team, 1);
      await db.query("select gk_public.activate_reconciler('exports__coordinate')");
      sagaId = await waitFor(drivenCreateSaga, "the worker's saga in attach", 30_000);
    } finally {
      await worker.stop("SIGKILL");
    }
    // The killed worker's job (its batch) stays locked by it until its pool is declared dead.
    const { rows: held } = await db.query(
      "select distinct locked_by from graphile_worker.jobs where task_identifier = 'exports__create' and locked_by is not null",
    );
    if (held.length)
      await unlockWorkers(
        db,
        held.map((h) => h.locked_by),
      );
    await thaw();
    await converge();
    await expectServed();
    expect((await db.query("select state from gk_public.sagas where id = $1", [sagaId])).rows[0].state).toBe("succeeded");
  });

  it("a node restarted without its storage answers 404: the coordinator finds the lost exports and re-creates them", async () => {
    const b = nodes.b!;
    const id = await nodeIdOf(b);
    const onB = (await db.query("select count(*)::int as n from gk_public.exports where node_id = $1 and state = 'live'", [id])).rows[0].n;
    expect(onB).toBeGreaterThan(0);
    await b.proc.stop("SIGKILL");
    fs.rmSync(path.join(b.dataDir, "exports"), { recursive: true, force: true });
    nodes.b = await runNode(peers, b);
    await converge();
    await expectServed();
    const { rows } = await db.query(
      "select sum((details->>'lost')::int)::int as n from gk_public.activations where task = 'exports__coordinate' and started_at > now() - interval '5 minutes'",
    );
    expect(rows[0].n).toBe(onB);
  });
});
