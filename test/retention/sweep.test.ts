// The retention sweep (tasks/retention__sweep.ts) over the registry gk_public.retention_policies:
// manifests, telemetry partitions, the bin's history, activations, permanently failed jobs and
// any registered kind; every prune bounded per activation, with the rest left for the next one.
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertEcuTelemetry, insertRobotManifests, scenario, withRobots, withTeam } from "../helpers/fixtures/index.ts";
import { clearJobs, jobs, runJobs, testServices } from "../helpers/jobs.ts";

const db = await createTestDb();

async function sweep() {
  await db.query("select gk_public.activate_reconciler('retention__sweep')");
  await runJobs(db, testServices());
  const { rows } = await db.query("select * from gk_public.activations where task = 'retention__sweep' order by id desc limit 1");
  return rows[0];
}

async function setLimit(kind: string, max: number) {
  await db.query("update gk_public.retention_policies set max_per_activation = $2 where kind = $1", [kind, max]);
}

describe("retention sweep", () => {
  it("deletes old manifests, drops old telemetry partitions, prunes the default partition, creates partitions ahead", async () => {
    const [robot] = (await scenario(db, withTeam({ name: "retention" }), withRobots(1))).robots;
    await insertRobotManifests(db, { robot, at: ["-31 days", "-29 days"] });
    await insertRobotManifests(db, { robot, at: ["0"], valid: false });
    // A partition 10 days back (as the daily cron would have made it), and strays in the default.
    await db.query("select gk_private.ensure_telemetry_partitions((now() at time zone 'utc')::date - 10, 1)");
    await insertEcuTelemetry(db, { robot, at: ["-10 days", "-10 days", "-20 days", "-8 days", "0", "-1 day"] });
    const part10 = `ecu_telemetry_p${new Date(Date.now() - 10 * 86400_000).toISOString().slice(0, 10).replace(/-/g, "")}`;
    expect((await db.query(`select count(*)::int as n from gk_private.${part10}`)).rows[0].n).toBe(2);
    expect((await db.query("select count(*)::int as n from gk_private.ecu_telemetry_default")).rows[0].n).toBe(2);

    const act = await sweep();
    expect(act.status).toBe("succeeded");
    expect(act.counts).toMatchObject({ robot_manifests: 1, ecu_telemetry: 4, purge_items: 0 });
    expect(act.details).toMatchObject({ deleted: { robot_manifests: 1, ecu_telemetry: 4 }, more_remaining: [], errors: [] });
    expect(await db.query(`select to_regclass('gk_private.${part10}') as r`).then((r) => r.rows[0].r)).toBeNull();
    expect((await db.query("select count(*)::int as n from gk_public.robot_manifests")).rows[0].n).toBe(2);
    expect((await db.query("select count(*)::int as n from gk_public.ecu_telemetry")).rows[0].n).toBe(2);
    // Partitions exist for the coming week.
    const ahead = `ecu_telemetry_p${new Date(Date.now() + 6 * 86400_000).toISOString().slice(0, 10).replace(/-/g, "")}`;
    expect((await db.query(`select to_regclass('gk_private.${ahead}') as r`)).rows[0].r).not.toBeNull();
  });

  it("creating a partition moves the strays that were waiting in the default partition", async () => {
    const [robot] = (await scenario(db, withTeam({ name: "strays" }), withRobots(1))).robots;
    await insertEcuTelemetry(db, { robot, at: ["30 days"], eventType: "future" });
    const strays = async () =>
      (await db.query("select count(*)::int as n from gk_private.ecu_telemetry_default where event_type = 'future'")).rows[0].n;
    expect(await strays()).toBe(1);
    const { rows } = await db.query(
      "select gk_private.ensure_telemetry_partitions((now() at time zone 'utc' + interval '30 days')::date, 1) as n",
    );
    expect(rows[0].n).toBe(1);
    expect(await strays()).toBe(0);
    expect((await db.query("select count(*)::int as n from gk_public.ecu_telemetry where event_type = 'future'")).rows[0].n).toBe(1);
  });

  it("calls every registered kind; a kind without its function is an item error, the others still run", async () => {
    await db.query("insert into gk_public.retention_policies (kind, retention) values ('tuf_metadata_test', interval '30 days')");
    await db.query(`create function gk_private.retention_prune__tuf_metadata_test(cutoff timestamptz, max_rows int) returns bigint
                    language sql volatile as $$ select 7::bigint $$`);
    await db.query("insert into gk_public.retention_policies (kind, retention) values ('nothing_here', interval '1 day')");
    const act = await sweep();
    expect(act.status).toBe("succeeded");
    expect(act.counts).toMatchObject({ tuf_metadata_test: 7, robot_manifests: 0 });
    const { rows } = await db.query("select item, error from gk_public.activation_errors where activation_id = $1", [act.id]);
    expect(rows).toEqual([
      {
        item: "nothing_here",
        error: expect.stringMatching(/has no function gk_private.retention_prune__nothing_here\(timestamptz, integer\)/),
      },
    ]);
    expect(act.details.errors).toEqual([expect.stringMatching(/^nothing_here: retention kind nothing_here has no function/)]);
    await db.query("delete from gk_public.retention_policies where kind in ('tuf_metadata_test', 'nothing_here')");
  });

  it("prunes at most max_per_activation rows per kind, says more remains, and comes back for the rest", async () => {
    const sc = await scenario(db, withTeam({ name: "bounded" }), withRobots(1));
    const team = sc.team.id;
    await insertRobotManifests(db, { robot: sc.robots[0], at: ["-45 days", "-44 days", "-43 days", "-42 days", "-41 days"] });
    await setLimit("robot_manifests", 2);
    await clearJobs(db);
    const first = await sweep();
    expect(first.details).toMatchObject({
      deleted: { robot_manifests: 2 },
      max_rows: { robot_manifests: 2 },
      more_remaining: ["robot_manifests"],
    });
    // The next activation is already scheduled (within a minute), with the crontab's job key.
    const next = await jobs(db, "retention__sweep");
    expect(next).toHaveLength(1);
    expect(next[0]).toMatchObject({ key: "retention__sweep" });
    expect(new Date(next[0].run_at).getTime()).toBeGreaterThan(Date.now());

    // Oldest first: what is left are the newest of the old ones.
    const left = async () =>
      (await db.query("select count(*)::int as n from gk_public.robot_manifests where team_id = $1", [team])).rows[0].n;
    expect(await left()).toBe(3);
    expect((await sweep()).details).toMatchObject({ deleted: { robot_manifests: 2 }, more_remaining: ["robot_manifests"] });
    const last = await sweep();
    expect(last.details).toMatchObject({ deleted: { robot_manifests: 1 } });
    expect(last.details.more_remaining).not.toContain("robot_manifests");
    expect(await left()).toBe(0);
    await setLimit("robot_manifests", 10_000);
  });

  it("prunes activations but keeps each task's latest and latest successful one", async () => {
    const ids: number[] = [];
    for (const status of ["succeeded", "succeeded", "failed", "succeeded", "failed"]) {
      const { rows } = await db.query("select gk_private.activation_start('gadgets__sweep') as id");
      await db.query("select gk_private.activation_finish($1, '{}', $2)", [rows[0].id, status === "failed" ? "boom" : null]);
      ids.push(Number(rows[0].id));
    }
    await db.query("update gk_public.activations set started_at = now() - interval '60 days' where task = 'gadgets__sweep'");
    await setLimit("activations", 1);
    const { rows } = await db.query("select gk_private.retention_prune__activations(now() - interval '14 days', 1) as n");
    expect(Number(rows[0].n)).toBe(1);
    await db.query("select gk_private.retention_prune__activations(now() - interval '14 days', 100)");
    const kept = (await db.query("select id from gk_public.activations where task = 'gadgets__sweep' order by id")).rows.map((r) =>
      Number(r.id),
    );
    expect(kept).toEqual([ids[3], ids[4]]);
    // The totals survive the pruning.
    const t = (await db.query("select succeeded, failed from gk_private.activation_tasks where task = 'gadgets__sweep'")).rows[0];
    expect(t).toEqual({ succeeded: "3", failed: "2" });
    await setLimit("activations", 10_000);
  });

  it("deletes permanently failed jobs once they have been inspectable for the policy's retention", async () => {
    await clearJobs(db);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": "bad"}')`);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": "also bad"}')`);
    await runJobs(db);
    expect((await jobs(db, "system__noop")).filter((j) => j.attempts >= j.max_attempts)).toHaveLength(2);
    // Young failures stay for inspection…
    expect(Number((await db.query("select gk_private.retention_prune__failed_jobs(now() - interval '7 days', 10) as n")).rows[0].n)).toBe(
      0,
    );
    // … and go once older than the cutoff, at most max_rows at a time.
    const cutoff = "now() + interval '1 minute'";
    expect(Number((await db.query(`select gk_private.retention_prune__failed_jobs(${cutoff}, 1) as n`)).rows[0].n)).toBe(1);
    expect(Number((await db.query(`select gk_private.retention_prune__failed_jobs(${cutoff}, 10) as n`)).rows[0].n)).toBe(1);
    expect(await jobs(db, "system__noop")).toEqual([]);
  });
});
