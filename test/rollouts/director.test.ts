// Director metadata regenerated lazily (src/rollouts/regenerate.ts, sql/600_rollouts_director.sql):
// a dirty robot's read signs once under 20 concurrent reads, a clean read writes nothing, a
// regeneration racing a newer change keeps the flag, the sweep (rollouts__regenerate) signs
// dirty robots in batches and renews expiring metadata and roots. Documents are checked with
// @tufjs/models (signature by the root's keys, what targets list).
import { Metadata, MetadataKind } from "@tufjs/models";
import { describe, expect, it } from "vitest";
import { readDirector, regenerateBatch, regenerateInBatches } from "../../src/rollouts/regenerate.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertEcus, insertImages, insertRobots, insertRollout, insertTeam } from "../helpers/fixtures/index.ts";
import { runJobs, testSecrets } from "../helpers/jobs.ts";

const db = await createTestDb();

async function launched(n: number, opts: { perRobot?: number } = {}) {
  const team = await insertTeam(db);
  const robots = await insertRobots(db, { team, count: n });
  const ecus = await insertEcus(db, { robots, perRobot: opts.perRobot ?? 1 });
  const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
  const rollout = await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
  return { team, robots, ecus, image, rollout };
}

const row = async (robotId: string) => (await db.query("select * from gk_public.robot_directors where robot_id = $1", [robotId])).rows[0];
const root = async (teamId: string, version = 1) =>
  Metadata.fromJSON(
    MetadataKind.Root,
    JSON.parse(
      (await db.query("select document from gk_public.director_roots where team_id = $1 and version = $2", [teamId, version])).rows[0]
        .document,
    ),
  );
/** What a signed targets document lists: its target names and the rollouts in their custom. */
const targetsOf = (doc: string | undefined) => {
  const t = JSON.parse(doc ?? "{}").signed.targets as Record<string, { custom: { rolloutIds: string[] } }>;
  return { names: Object.keys(t), rolloutIds: Object.values(t).flatMap((x) => x.custom.rolloutIds) };
};
const read = (robot: { id: string; team_id: string }) => readDirector(db.pool, testSecrets, robot.id, robot.team_id);

describe("director metadata: regenerate on read", () => {
  it("20 concurrent reads of a dirty robot sign once and all get the same documents", async () => {
    const f = await launched(1);
    const reads = await Promise.all(Array.from({ length: 20 }, () => read(f.robots[0])));
    expect(reads.filter((r) => r?.signed)).toHaveLength(1);
    expect(new Set(reads.map((r) => r?.director.timestamp)).size).toBe(1);
    expect(await row(f.robots[0].id)).toMatchObject({ dirty: false, timestamp_version: 1, targets_version: 1 });
    expect((await db.query("select state from gk_public.rollout_robots where robot_id = $1", [f.robots[0].id])).rows[0].state).toBe(
      "scheduled",
    );
    // Dirty again with no rollout row to schedule (the robot's row lock alone serializes the readers).
    await db.query("select gk_private.director_mark_dirty(array[$1]::uuid[])", [f.robots[0].id]);
    const again = await Promise.all(Array.from({ length: 20 }, () => read(f.robots[0])));
    expect(again.filter((r) => r?.signed)).toHaveLength(1);
    expect(await row(f.robots[0].id)).toMatchObject({ dirty: false, timestamp_version: 2 });
  });

  it("20 concurrent first reads of a robot with no director row create it once and sign once", async () => {
    // No ECU, so nothing marked it: director_prepare finds no row to lock and creates it.
    const team = await insertTeam(db);
    const [robot] = await insertRobots(db, { team });
    expect(await row(robot.id)).toBeUndefined();
    const reads = await Promise.all(Array.from({ length: 20 }, () => read(robot)));
    expect(reads.filter((r) => r?.signed)).toHaveLength(1);
    expect(new Set(reads.map((r) => r?.director.timestamp)).size).toBe(1);
    expect(targetsOf(reads[0]?.director.targets).names).toEqual([]);
    expect(await row(robot.id)).toMatchObject({ dirty: false, timestamp_version: 1 });
  });

  it("the documents verify against the team's director root and list exactly each ECU's image, serial in custom", async () => {
    const team = await insertTeam(db);
    const [robot] = await insertRobots(db, { team });
    const [a] = await insertEcus(db, { robots: [robot], hardwareId: "hw-a", prefix: "a" });
    await insertEcus(db, { robots: [robot], hardwareId: "hw-unmapped", prefix: "b" });
    const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
    const rollout = await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
    const r = await read(robot);
    const trusted = await root(team.id);
    expect(trusted.signed.consistentSnapshot).toBe(false);
    const targets = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(r!.director.targets));
    const snapshot = Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(r!.director.snapshot));
    const timestamp = Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(r!.director.timestamp));
    trusted.verifyDelegate("targets", targets);
    trusted.verifyDelegate("snapshot", snapshot);
    trusted.verifyDelegate("timestamp", timestamp);
    expect(snapshot.signed.meta["targets.json"].version).toBe(targets.signed.version);
    expect(timestamp.signed.snapshotMeta.version).toBe(snapshot.signed.version);
    const listed = JSON.parse(r!.director.targets).signed.targets;
    expect(listed).toEqual({
      [`${image.name}-${image.version}`]: {
        length: Number(image.length),
        hashes: { sha256: image.sha256, sha512: image.sha512 },
        custom: { ecuIdentifiers: { [a.serial]: { hardwareId: "hw-a" } }, rolloutIds: [rollout.id] },
      },
    });
    // A key that is not the root's is refused (the check above can fail).
    const other = await insertTeam(db);
    const [otherRobot] = await insertRobots(db, { team: other });
    const foreign = await read(otherRobot);
    expect(() =>
      trusted.verifyDelegate("timestamp", Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(foreign!.director.timestamp))),
    ).toThrow();
  });

  it("a clean read writes nothing; an expired one is re-signed; another team's robot is not found", async () => {
    const f = await launched(1);
    await read(f.robots[0]);
    const first = await row(f.robots[0].id);
    const again = await read(f.robots[0]);
    expect(again?.signed).toBe(false);
    expect(await row(f.robots[0].id)).toEqual(first);
    await db.query("update gk_public.robot_directors set expires = now() - interval '1 second' where robot_id = $1", [f.robots[0].id]);
    expect((await read(f.robots[0]))?.signed).toBe(true);
    expect((await row(f.robots[0].id)).timestamp_version).toBe(2);
    const stranger = await insertTeam(db);
    expect(await readDirector(db.pool, testSecrets, f.robots[0].id, stranger.id)).toBeNull();
  });
});

describe("director metadata: the sweep", () => {
  it("a regeneration racing a newer change does not clear the flag; the next one signs the change", async () => {
    const f = await launched(2);
    const raced = f.robots[0];
    const c = await db.pool.connect();
    try {
      const result = await regenerateBatch(
        c,
        testSecrets,
        f.robots.map((r) => r.id),
        async () => {
          await db.query("select gk_private.director_mark_dirty(array[$1]::uuid[])", [raced.id]);
        },
      );
      expect(result).toEqual({ stored: [f.robots[1].id], raced: [raced.id] });
      expect(await row(raced.id)).toMatchObject({ dirty: true, signed_generation: "0", expires: null });
      expect((await db.query("select 1 from gk_public.robot_director_documents where robot_id = $1", [raced.id])).rowCount).toBe(0);
      expect(await regenerateBatch(c, testSecrets, [raced.id])).toEqual({ stored: [raced.id], raced: [] });
    } finally {
      c.release();
    }
    expect(await row(raced.id)).toMatchObject({ dirty: false });
  });

  it("a regeneration racing a newer launch or a cancel of the pending row it signed stores nothing and schedules nothing", async () => {
    const f = await launched(2);
    const [image2] = await insertImages(db, { team: f.team, hardwareIds: ["hw-a"] });
    const c = await db.pool.connect();
    try {
      // Signed clean first, then a launch: dirty by the pending rows alone.
      await regenerateBatch(
        c,
        testSecrets,
        f.robots.map((r) => r.id),
      );
      const second = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: image2 }], state: "launched" });
      const [superseded, cancelled] = f.robots;
      expect(
        await regenerateBatch(c, testSecrets, [superseded.id], async () => {
          // A newer launch supersedes the pending row this regeneration read and listed.
          const third = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: f.image }], robots: [superseded] });
          await db.query("select gk_public.rollout_launch($1)", [third.id]);
        }),
      ).toEqual({ stored: [], raced: [superseded.id] });
      const states = async (id: string) =>
        (await db.query("select rollout_id, state from gk_public.rollout_robots where robot_id = $1 order by created_at, state", [id]))
          .rows;
      expect((await states(superseded.id)).map((x) => x.state)).toEqual(["skipped", "skipped", "pending"]);
      // The next regeneration lists the newest rollout.
      expect(await regenerateBatch(c, testSecrets, [superseded.id])).toEqual({ stored: [superseded.id], raced: [] });
      expect(targetsOf((await read(superseded))?.director.targets).rolloutIds).toEqual([(await states(superseded.id))[2].rollout_id]);

      const before = (await db.query("select targets from gk_public.robot_director_documents where robot_id = $1", [cancelled.id])).rows[0]
        .targets as string;
      expect(
        await regenerateBatch(c, testSecrets, [cancelled.id], async () => {
          await db.query("select gk_public.rollout_cancel($1)", [second.id]);
        }),
      ).toEqual({ stored: [], raced: [cancelled.id] });
      // Its pending row was cancelled, never scheduled. The first rollout, which its stored
      // documents still list, was superseded by it: the cancel marked the robot, so the next read
      // signs again and lists no rollout (the ECU runs nothing yet).
      expect((await states(cancelled.id)).map((x) => x.state)).toEqual(["skipped", "cancelled"]);
      expect(targetsOf(before).rolloutIds).toEqual([f.rollout.id]);
      const after = await read(cancelled);
      expect(after?.signed).toBe(true);
      expect(targetsOf(after?.director.targets)).toEqual({ names: [], rolloutIds: [] });
    } finally {
      c.release();
    }
  });

  it("20 concurrent reads of a robot dirty only by a new launch's pending row sign once, and schedule it once", async () => {
    const f = await launched(1);
    await read(f.robots[0]);
    const [image2] = await insertImages(db, { team: f.team, hardwareIds: ["hw-a"] });
    const before = await row(f.robots[0].id);
    const second = await insertRollout(db, { team: f.team, images: [{ hardwareId: "hw-a", image: image2 }], state: "launched" });
    expect(await row(f.robots[0].id)).toEqual(before); // the launch wrote no director row
    const reads = await Promise.all(Array.from({ length: 20 }, () => read(f.robots[0])));
    expect(reads.filter((r) => r?.signed)).toHaveLength(1);
    expect(new Set(reads.map((r) => r?.director.timestamp)).size).toBe(1);
    expect(targetsOf(reads[0]?.director.targets).rolloutIds).toEqual([second.id]);
    expect(await row(f.robots[0].id)).toMatchObject({ dirty: false, timestamp_version: before.timestamp_version + 1 });
    expect(
      (await db.query("select state from gk_public.rollout_robots where rollout_id = $1", [second.id])).rows.map((x) => x.state),
    ).toEqual(["scheduled"]);
  });

  it("the sweep's work list and the clean read find robots with pending rows through indexes", async () => {
    const team = await insertTeam(db);
    const robots = await insertRobots(db, { team, count: 3000 });
    await insertEcus(db, { robots });
    const [image] = await insertImages(db, { team, hardwareIds: ["hw-a"] });
    // Many finished rollouts' rows, then every robot signed (as if), then a few pending rows.
    for (let i = 0; i < 3; i++) {
      const r = await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
      await db.query("select gk_public.rollout_cancel($1)", [r.id]);
    }
    // Statistics from before the signing (no robot had an expiry yet), as right after a fleet's
    // first sweep, before autovacuum comes by: "expires > now()" then looks rare.
    await db.query("vacuum analyze gk_public.robot_directors");
    await db.query(
      `update gk_public.robot_directors set dirty = false, dirty_since = null, signed_generation = generation,
              expires = now() + interval '1 day' where team_id = $1`,
      [team.id],
    );
    await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], robots: robots.slice(0, 5), state: "launched" });
    for (const t of ["rollout_robots", "rollouts"]) await db.query(`vacuum analyze gk_public.${t}`);
    const plan = async (sql: string, params: unknown[] = []) =>
      (await db.query(`explain (format json) ${sql}`, params)).rows[0]["QUERY PLAN"][0].Plan as unknown;
    const scans = (p: unknown): string[] => {
      const o = p as { "Node Type"?: string; "Relation Name"?: string; "Index Name"?: string; Plans?: unknown[] };
      return [
        ...(o["Node Type"]?.endsWith("Scan") ? [`${o["Node Type"]}:${o["Index Name"] ?? o["Relation Name"] ?? ""}`] : []),
        ...(o.Plans ?? []).flatMap(scans),
      ];
    };
    const body = (await db.query("select prosrc from pg_proc where oid = 'gk_private.director_due(int)'::regprocedure")).rows[0].prosrc;
    const workList = (/return query\s+([\s\S]*?);\s*end;\s*$/.exec(body)?.[1] ?? "missing: director_due's work list").replaceAll(
      "max_rows",
      "500",
    );
    // The clean read: director_read's first query (sql/600_rollouts_director.sql).
    const readBody = (await db.query("select prosrc from pg_proc where oid = 'gk_private.director_read(uuid, uuid)'::regprocedure")).rows[0]
      .prosrc as string;
    const cleanRead = (/return query\s+([\s\S]*?);\s*if found/.exec(readBody)?.[1] ?? "missing: director_read's first query")
      .replaceAll("p_robot_id", "$1::uuid")
      .replaceAll("p_team_id", "$2::uuid");
    const cleanPlan = scans(await plan(cleanRead, [robots[0].id, team.id]));
    expect(cleanPlan.filter((x) => x.startsWith("Seq Scan"))).toEqual([]);
    // One key lookup, not a scan of every clean robot's expiry.
    expect(cleanPlan).toContain("Index Scan:robot_directors_pkey");
    expect(cleanPlan.filter((x) => /robot_directors_expires_idx/.test(x))).toEqual([]);
    // The pending check is a probe by robot id (either index on it).
    expect(cleanPlan.some((x) => /rollout_robots_(one_active|robot)_idx/.test(x))).toBe(true);
    // The work list, with current statistics.
    await db.query("vacuum analyze gk_public.robot_directors");
    // (rollouts itself is a handful of rows here, read whole; its launched rows have rollouts_launched_idx.)
    const duePlan = scans(await plan(workList));
    expect(duePlan.filter((x) => x.startsWith("Seq Scan") && x !== "Seq Scan:rollouts")).toEqual([]);
    expect(duePlan).toContain("Index Scan:robot_directors_dirty_idx");
    expect(duePlan.some((x) => /rollout_robots_rollout_state_idx|rollout_robots_one_active_idx/.test(x))).toBe(true);
    // And the work list has exactly the pending robots.
    expect(
      (await db.query("select robot_id from gk_private.director_due(500) where team_id = $1", [team.id])).rows
        .map((x) => x.robot_id)
        .sort(),
    ).toEqual(
      robots
        .slice(0, 5)
        .map((r) => r.id)
        .sort(),
    );
  });

  it("rollouts__regenerate signs every dirty robot in batches, with a typed status", async () => {
    const f = await launched(30);
    // With the crontab's job key and queue: it replaces the activation the launch scheduled.
    await db.query(
      `select gk_private.enqueue('rollouts__regenerate', '{"limits": {"batch_size": 7}}'::jsonb, job_key := 'rollouts__regenerate',
                                 queue_name := 'rollouts__regenerate')`,
    );
    await runJobs(db);
    const { rows } = await db.query("select count(*)::int as n from gk_public.robot_directors where team_id = $1 and dirty", [f.team.id]);
    expect(rows[0].n).toBe(0);
    const activation = (
      await db.query("select details from gk_public.activations where task = 'rollouts__regenerate' order by id desc limit 1")
    ).rows[0].details;
    expect(activation).toMatchObject({ robots_raced: 0, errors: [], limits: { batch_size: 7 } });
    const states = (
      await db.query("select state, count(*)::int as n from gk_public.rollout_robots where rollout_id = $1 group by 1", [f.rollout.id])
    ).rows;
    expect(states).toEqual([{ state: "scheduled", n: 30 }]);
  });

  it("the pipelined sweep reports a failing batch and stores the batches before and after it", async () => {
    const ok = await launched(3);
    const broken = await launched(1);
    const c = await db.pool.connect();
    try {
      // A team whose director lost its online key (never opened by this process): its batch fails.
      await db.query("select gk_private.director_mark_dirty(array[$1]::uuid[])", [broken.robots[0].id]);
      await db.query(
        "insert into gk_public.director_repositories (team_id, root_expires, root_key_id, online_key_id) values ($1, now() + interval '1 year', $2, $2)",
        [broken.team.id, "0".repeat(64)],
      );
      const ids = [ok.robots[0].id, broken.robots[0].id, ok.robots[1].id, ok.robots[2].id];
      const failed: string[][] = [];
      const result = await regenerateInBatches(c, testSecrets, ids, 1, async (batch) => {
        failed.push(batch);
      });
      expect(failed).toEqual([[broken.robots[0].id]]);
      expect(result.stored.sort()).toEqual(ok.robots.map((r) => r.id).sort());
      expect(result.raced).toEqual([]);
      expect(await row(broken.robots[0].id)).toMatchObject({ dirty: true });
    } finally {
      c.release();
      // Later sweeps in this file are not about it.
      await db.query("delete from gk_public.director_repositories where team_id = $1", [broken.team.id]);
      await db.query("delete from gk_public.robots where id = $1", [broken.robots[0].id]);
    }
  });

  it("a store that fails (while the next batch is signed) is reported for its batch alone; the others are stored", async () => {
    const f = await launched(4);
    const bad = f.robots[1].id;
    // The store of one robot's documents fails: a trigger refuses its director row's update.
    await db.query(`create function public.refuse_store() returns trigger language plpgsql as $$
      begin raise exception 'refused store of %', new.robot_id; end $$`);
    await db.query(`create trigger refuse_store before update on gk_public.robot_directors
      for each row when (new.robot_id = '${bad}'::uuid) execute function public.refuse_store()`);
    const c = await db.pool.connect();
    try {
      const failed: { batch: string[]; message: string }[] = [];
      const ids = f.robots.map((r) => r.id);
      const result = await regenerateInBatches(c, testSecrets, ids, 1, async (batch, e) => {
        failed.push({ batch, message: (e as Error).message });
      });
      expect(failed).toEqual([{ batch: [bad], message: `refused store of ${bad}` }]);
      expect(result.stored.sort()).toEqual(ids.filter((id) => id !== bad).sort());
      const pending = await db.query("select robot_id from gk_public.rollout_robots where rollout_id = $1 and state = 'pending'", [
        f.rollout.id,
      ]);
      expect(pending.rows.map((r) => r.robot_id)).toEqual([bad]); // its pending row was not scheduled either
    } finally {
      c.release();
      await db.query("drop trigger refuse_store on gk_public.robot_directors");
      await db.query("drop function public.refuse_store()");
    }
  });

  it("re-signs metadata expiring within the resign window and renews an expiring root, signed by the old root key", async () => {
    const f = await launched(1);
    await read(f.robots[0]);
    await db.query("update gk_public.robot_directors set expires = now() + interval '1 hour' where robot_id = $1", [f.robots[0].id]);
    await db.query("update gk_public.director_repositories set root_expires = now() + interval '1 hour' where team_id = $1", [f.team.id]);
    await db.query("select gk_private.enqueue('rollouts__regenerate')");
    await runJobs(db);
    expect(await row(f.robots[0].id)).toMatchObject({ dirty: false, timestamp_version: 2 });
    const v2 = await root(f.team.id, 2);
    (await root(f.team.id, 1)).verifyDelegate("root", v2);
    v2.verifyDelegate("root", v2);
  });
});
