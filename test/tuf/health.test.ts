// A repository cannot be configured so that publishing fails or the resigner cannot keep it valid
// (migration 0111), and a publish that fails anyway is visible — on the repository row, in
// tuf_repository_status, `groundskeeper status` and /metrics — not only as a retrying job.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CRONTAB_FILE } from "../../src/worker/crontab.ts";
import { fromPool } from "../../src/tuf/db.ts";
import { initRepository } from "../../src/tuf/init.ts";
import { tufSection } from "../../src/tuf/status.ts";
import { createTestDb } from "../helpers/db.ts";
import { httpGraphql } from "../helpers/graphql.ts";
import { jobs } from "../helpers/jobs.ts";
import { waitFor } from "../helpers/wait.ts";
import { addTargets, box, fakeTarget, publishNow, setupRepository, tmpDir, type TufFixture, verifyEveryRepository } from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
const api = await httpGraphql(db);
let fx: TufFixture;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 4 });
});
afterAll(() => fx?.close());

const repoRow = async () =>
  (
    await db.query(
      "select last_publish_error, publish_failing_since, publish_failures, last_published_at from gk_public.tuf_repositories where team_id = $1",
      [fx.teamId],
    )
  ).rows[0];

async function initWith(lifetimes: Record<string, string>) {
  const team = `lt-${Math.random().toString(36).slice(2, 8)}`;
  await db.query("insert into gk_public.teams (name) values ($1)", [team]);
  return initRepository(fromPool(db.pool), box, { team, keysDir: tmpDir("lt"), keys: 1, threshold: 1, bins: 2, lifetimes }).then(
    () => null,
    (e: Error) => e.message,
  );
}

describe("lifetimes", () => {
  it("the resign interval the rules assume is the crontab's tuf__resign schedule", async () => {
    const line = fs
      .readFileSync(CRONTAB_FILE, "utf8")
      .split("\n")
      .find((l) => / tuf__resign /.test(l) && !l.startsWith("#"));
    expect(line?.split(/\s+/).slice(0, 5).join(" ")).toBe("*/5 * * * *");
    expect((await db.query("select extract(epoch from gk_private.tuf_resign_interval())::int as s")).rows[0].s).toBe(300);
  });

  it("refuses lifetimes a publish cannot sign or the resigner cannot keep, and creates nothing", async () => {
    const before = Number((await db.query("select count(*) from gk_public.tuf_repositories")).rows[0].count);
    expect(await initWith({ timestamp: "1000000 years" })).toMatch(/invalid lifetimes: .*lifetimes must be at most 10 years/);
    // The case: a 3-minute timestamp with a 1-minute window expires between 5-minute sweeps.
    expect(await initWith({ timestamp: "3 minutes", resignWindow: "1 minute" })).toMatch(
      /resign_window 00:01:00 is too short: the resign sweep runs every 00:05:00, so it must be at least 00:10:01/,
    );
    expect(await initWith({ timestamp: "15 minutes", resignWindow: "11 minutes" })).toMatch(
      /every lifetime must be at least resign_window \+ 00:10:00 \(00:21:00\), the shortest is 00:15:00/,
    );
    expect(await initWith({ publishDelay: "2 hours", resignWindow: "3 hours" })).toMatch(/publish_delay must be between 0 and 1 hour/);
    expect(await initWith({ timestamp: "not an interval" })).toMatch(/invalid lifetimes: invalid input syntax for type interval/);
    expect(Number((await db.query("select count(*) from gk_public.tuf_repositories")).rows[0].count)).toBe(before);
    // The tightest accepted setting: window = two sweeps + publish_delay, lifetime = window + two sweeps.
    expect(
      await initWith({ timestamp: "20 minutes 2 seconds", resignWindow: "10 minutes 2 seconds", publishDelay: "2 seconds" }),
    ).toBeNull();
  });

  it("an admin's update is refused the same way through GraphQL, and nothing changes", async () => {
    const r = await api.exec(
      "admin",
      `mutation($team: UUID!) { updateTufRepositoryByTeamId(input: { teamId: $team, tufRepositoryPatch: { timestampLifetime: { years: 1000000 } } }) { tufRepository { timestampLifetime { days } } } }`,
      { team: fx.teamId },
    );
    expect(r.errors?.[0].message).toMatch(/lifetimes must be at most 10 years/);
    const [error] = (r.errors ?? []) as { extensions?: { code?: string } }[];
    expect(error?.extensions?.code).toBe("BAD_INPUT");
    const { rows } = await db.query("select timestamp_lifetime::text from gk_public.tuf_repositories where team_id = $1", [fx.teamId]);
    expect(rows[0].timestamp_lifetime).toBe("1 day");
  });
});

describe("a failing publish is visible", () => {
  it("on the repository row, in status and in /metrics, and clears on the next success", async () => {
    expect((await repoRow()).last_published_at).not.toBeNull();
    fx.blobs.down = "blob store unreachable";
    try {
      await addTargets(db, fx.teamId, [fakeTarget(1, "health")]);
      await publishNow(db, fx.blobs);
      await waitFor(async () => (await jobs(db, "tuf__publish")).find((j) => j.last_error));
      await db.query("update graphile_worker._private_jobs set run_at = now()");
      await publishNow(db, fx.blobs);
      await waitFor(async () => (await repoRow()).publish_failures >= 2, "two failed attempts");
    } finally {
      fx.blobs.down = null;
    }
    const row = await repoRow();
    expect(row.last_publish_error).toMatch(/blob store unreachable/);
    expect(row.publish_failing_since).toBeInstanceOf(Date);

    const status = (await tufSection.collect(db.pool)).find((r) => r.team_name === fx.team)!;
    expect(status).toMatchObject({ publish_failures: row.publish_failures, last_publish_error: row.last_publish_error });
    expect(tufSection.render([status])).toMatch(
      new RegExp(`${fx.team} .*for .*\\(${row.publish_failures} attempts\\).*blob store unreachable`),
    );

    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^gk_tuf_publish_failures\\{team="${fx.team}"\\} ${row.publish_failures}$`, "m"));
    const failing = Number(new RegExp(`^gk_tuf_publish_failing_seconds\\{team="${fx.team}"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(failing).toBeGreaterThanOrEqual(0);

    // The store is back: the retry publishes and the row says so.
    await db.query("update graphile_worker._private_jobs set run_at = now()");
    await publishNow(db, fx.blobs);
    await waitFor(async () => (await repoRow()).last_publish_error === null, "the failure cleared");
    expect(await repoRow()).toMatchObject({ publish_failing_since: null, publish_failures: 0 });
    expect(await (await fetch(`${api.url}/metrics`)).text()).toMatch(
      new RegExp(`^gk_tuf_publish_failing_seconds\\{team="${fx.team}"\\} 0$`, "m"),
    );
  });
});
