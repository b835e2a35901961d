// bench/robots.ts with BENCH_PART=manifests: what the replay check and the comparison with the
// director's targets (gk_private.robot_manifest_accepted) cost per manifest, side by side in one
// run with the bare store the robot API did before (gk_private.robot_manifest_received), on a
// fleet whose robots (two ECUs each) are scheduled in a launched rollout. Per robot, in turn: a
// bare store, a manifest reporting the old image (pending: no event), one reporting the rollout's
// image (matches: two installation_completed events through rollouts_record_event, the robot
// completes) — every other robot instead gets the old path's equivalent: the bare store and the
// same two events as POST /robot/v1/events records them. Signatures are not part of it (checked
// in Node before, unchanged).
import type pg from "pg";

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const f = (x: number) => `${x.toFixed(2)} ms`;

export async function manifestsBench(pool: pg.Pool, robots: number): Promise<void> {
  const team = (await pool.query("insert into gk_public.teams (name) values ('bench-manifests') returning id")).rows[0].id as string;
  const images = (
    await pool.query<{ id: string; name: string; version: string; length: string; sha256: string; sha512: string }>(
      `insert into gk_public.images (team_id, name, version, blob_key, length, sha256, sha512, hardware_ids)
       select $1::uuid, 'fw', '1.0.' || g, 'teams/' || $1::text || '/images/fw/' || g, 1024 * g,
              encode(sha256(convert_to('fw' || g, 'UTF8')), 'hex'), encode(sha512(convert_to('fw' || g, 'UTF8')), 'hex'), array['hw-a']
         from generate_series(1, 2) g order by g returning id, name, version, length, sha256, sha512`,
      [team],
    )
  ).rows;
  await pool.query("insert into gk_public.robots (team_id, name) select $1, 'm' || g from generate_series(1, $2::int) g", [team, robots]);
  await pool.query(
    `insert into gk_public.ecus (team_id, robot_id, serial, hardware_id, is_primary, installed_image_id)
     select r.team_id, r.id, 'ecu-' || g, 'hw-a', g = 1, $2 from gk_public.robots r, generate_series(1, 2) g where r.team_id = $1`,
    [team, images[0]!.id],
  );
  const fleet = (await pool.query<{ id: string }>("select id from gk_public.robots where team_id = $1 order by id", [team])).rows.map(
    (r) => r.id,
  );
  const rollout = (
    await pool.query(`select id from gk_public.rollout_create($1, 'bench', 'selected_robots', $2::jsonb, robot_ids => $3::uuid[])`, [
      team,
      JSON.stringify([{ hardwareId: "hw-a", imageId: images[1]!.id }]),
      fleet,
    ])
  ).rows[0].id as string;
  await pool.query("select gk_public.rollout_launch($1)", [rollout]);
  await pool.query("select count(*) from gk_private.director_schedule($1::uuid[])", [fleet]);

  let counter = 0;
  const manifest = (image: (typeof images)[number]) => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(".000Z", "Z");
    const reports = ["ecu-1", "ecu-2"].map((serial) => ({
      serial,
      counter: ++counter,
      time: now,
      filepath: `${image.name}-${image.version}`,
      length: Number(image.length),
      sha256: image.sha256,
      sha512: image.sha512,
    }));
    const sig = [{ keyid: "k".repeat(64), sig: "0".repeat(128) }];
    const body = {
      signed: {
        primary_ecu_serial: "ecu-1",
        ecu_version_manifests: Object.fromEntries(
          reports.map((r) => [
            r.serial,
            {
              signed: {
                ecu_serial: r.serial,
                report_counter: r.counter,
                timeserver_time: r.time,
                installed_image: { filepath: r.filepath, fileinfo: { length: r.length, hashes: { sha256: r.sha256, sha512: r.sha512 } } },
              },
              signatures: sig,
            },
          ]),
        ),
      },
      signatures: sig,
    };
    return { body, reports };
  };

  const bare: number[] = [];
  const pending: number[] = [];
  const matching: number[] = [];
  const withEvents: number[] = [];
  const accept = (robot: string, m: ReturnType<typeof manifest>) =>
    pool.query("select gk_private.robot_manifest_accepted($1, $2, $3, $4) as a", [robot, team, m.body, JSON.stringify(m.reports)]);
  for (const [i, robot] of fleet.entries()) {
    const m0 = manifest(images[0]!);
    let t0 = process.hrtime.bigint();
    await pool.query("select id from gk_private.robot_manifest_received($1, $2, true, $3)", [robot, team, m0.body]);
    bare.push(ms(t0));
    const m1 = manifest(images[0]!);
    t0 = process.hrtime.bigint();
    const p = await accept(robot, m1);
    pending.push(ms(t0));
    if (p.rows[0].a.ecus[0].verdict !== "pending") throw new Error(`expected pending: ${JSON.stringify(p.rows[0].a)}`);
    const m2 = manifest(images[1]!);
    if (i % 2 === 0) {
      t0 = process.hrtime.bigint();
      const a = await accept(robot, m2);
      matching.push(ms(t0));
      if (a.rows[0].a.ecus[1].event !== "recorded") throw new Error(`expected an event: ${JSON.stringify(a.rows[0].a)}`);
      continue;
    }
    // The like-for-like of the old path: the bare store, then the robot's two
    // installation_completed events as POST /robot/v1/events records them (one transaction).
    const c = await pool.connect();
    try {
      t0 = process.hrtime.bigint();
      await c.query("begin");
      await c.query("select id from gk_private.robot_manifest_received($1, $2, true, $3)", [robot, team, m2.body]);
      for (const serial of ["ecu-1", "ecu-2"]) {
        await c.query("select gk_private.rollouts_record_event($1, gen_random_uuid(), $2, 'installation_completed')", [robot, serial]);
      }
      await c.query("commit");
      withEvents.push(ms(t0));
    } finally {
      c.release();
    }
  }
  const completed = (
    await pool.query("select count(*)::int as n from gk_public.rollout_robots where rollout_id = $1 and state = 'completed'", [rollout])
  ).rows[0].n as number;
  console.log(
    `manifests: ${fleet.length} robots × 3 manifests (2 ECUs each); ${completed} robots completed (half by manifests, half by events)`,
  );
  console.log(`bare store (robot_manifest_received):        p50 ${f(pct(bare, 50))}  p99 ${f(pct(bare, 99))}`);
  console.log(`accepted, pending (check + compare):         p50 ${f(pct(pending, 50))}  p99 ${f(pct(pending, 99))}`);
  console.log(`accepted, matches (+ 2 events, completion):  p50 ${f(pct(matching, 50))}  p99 ${f(pct(matching, 99))}`);
  console.log(`bare store + 2 events (the old path, 1 tx):   p50 ${f(pct(withEvents, 50))}  p99 ${f(pct(withEvents, 99))}`);
  const pendingRatio = pct(pending, 50) / pct(bare, 50);
  const matchRatio = pct(matching, 50) / pct(withEvents, 50);
  console.log(
    `ratios p50: pending ${pendingRatio.toFixed(2)}× the bare store; matches ${matchRatio.toFixed(2)}× the bare store + 2 events`,
  );
}
