// What an operator sees and does, through the real admin API (over HTTP, with an admin and a
// viewer token) and the real `groundskeeper status`: workers and volumes by state, every pending
// destroy in the bin with its age and the agent's last refusal, retry and force-destroy.
import { describe, expect, it } from "vitest";
import { volumesSection } from "../../src/volumes/status.ts";
import { cliEnv, runCli } from "../helpers/cli.ts";
import { createTestDb } from "../helpers/db.ts";
import { insertContainers, insertTeam, insertVolumes, insertWorker } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";

const db = await createTestDb();
const gql = await httpGraphql(db);
await insertTeam(db, { name: "builders" });

describe("operators", () => {
  it("see workers, volumes by state and pending destroys with age and last error; retry and force-destroy a tree; viewers only read", async () => {
    const w = await insertWorker(db, { name: "w1" });
    await insertWorker(db, { name: "w2", state: "stalled" });
    const containers = await insertContainers(db, { worker: w, count: 4 });
    const [root, other] = await insertVolumes(db, { worker: w, containers: [containers[0]!, containers[1]!] });
    const [child] = await insertVolumes(db, { worker: w, containers: [containers[2]!], parents: [root!.id] });
    const [grandchild] = await insertVolumes(db, { worker: w, containers: [containers[3]!], parents: [child!.id] });

    // Force-destroy the root: the whole tree loses its owners; the collector takes leaves first.
    const forced = await gql.exec("admin", "mutation($h: UUID!) { forceDestroyVolume(input: { handle: $h }) { result } }", {
      h: root!.handle,
    });
    expect(forced).toEqual({ data: { forceDestroyVolume: { result: 3 } } });
    expect((await db.query("select gk_private.volumes_mark_orphans() as n")).rows[0].n).toBe(1); // the grandchild
    await db.query("select gk_private.volumes_destroy_failed($1, array[$2::uuid], array['agent w1: EPERM: operation not permitted'])", [
      w,
      grandchild!.handle,
    ]);

    const seen = await gql.exec(
      "viewer",
      `{ allWorkers(orderBy: NAME_ASC) { nodes { name state } }
         allVolumeCounts(orderBy: STATE_ASC) { nodes { workerName state volumes failing } }
         allBins(condition: { kind: "volume" }) { nodes { ref attempts lastError age { seconds } } } }`,
    );
    expect(seen.errors).toBeUndefined();
    expect(seen.data.allWorkers.nodes).toEqual([
      { name: "w1", state: "running" },
      { name: "w2", state: "stalled" },
    ]);
    expect(seen.data.allVolumeCounts.nodes).toEqual([
      { workerName: "w1", state: "created", volumes: 3, failing: 0 },
      { workerName: "w1", state: "destroying", volumes: 1, failing: 1 },
    ]);
    expect(seen.data.allBins.nodes).toEqual([
      { ref: grandchild!.handle, attempts: 1, lastError: "agent w1: EPERM: operation not permitted", age: { seconds: expect.any(Number) } },
    ]);

    // Retry: due now, the collector activated; an unknown or live handle is a clear error.
    await db.query("delete from graphile_worker._private_jobs");
    const retried = await gql.exec("admin", "mutation($h: UUID!) { retryVolumeDestroy(input: { handle: $h }) { result { state } } }", {
      h: grandchild!.handle,
    });
    expect(retried).toEqual({ data: { retryVolumeDestroy: { result: { state: "destroying" } } } });
    const { rows } = await db.query(
      "select v.next_attempt_at <= now() as due, (select count(*)::int from graphile_worker.jobs where task_identifier = 'volumes__collect') as jobs from gk_public.volumes v where handle = $1",
      [grandchild!.handle],
    );
    expect(rows[0]).toEqual({ due: true, jobs: 1 });
    const live = await gql.exec("admin", "mutation($h: UUID!) { retryVolumeDestroy(input: { handle: $h }) { result { state } } }", {
      h: other!.handle,
    });
    expect(live.errors).toMatchObject([{ message: `no volume ${other!.handle} is being destroyed`, extensions: { code: "NOT_FOUND" } }]);
    const viaBin = await gql.exec("admin", 'mutation($r: String!) { retryBinItem(input: { kind: "volume", ref: $r }) { result } }', {
      r: grandchild!.handle,
    });
    expect(viaBin).toEqual({ data: { retryBinItem: { result: true } } });

    // A viewer reads but cannot change anything.
    const refused = await gql.exec("viewer", "mutation($h: UUID!) { forceDestroyVolume(input: { handle: $h }) { result } }", {
      h: other!.handle,
    });
    expect(refused.errors).toMatchObject([{ extensions: { code: "PERMISSION_DENIED" } }]);
    expect((await db.query("select container_id from gk_public.volumes where id = $1", [other!.id])).rows[0].container_id).not.toBeNull();

    // `groundskeeper status --json` (one process), and its text rendering of the same data.
    const status = await runCli(["status", "--json"], cliEnv({ DATABASE_URL: db.url }));
    expect(status.code, status.stderr).toBe(0);
    const json = JSON.parse(status.stdout);
    expect(json.volumes.volumes).toEqual([
      { state: "created", volumes: 3, missing: 0, failing: 0 },
      { state: "destroying", volumes: 1, missing: 0, failing: 1 },
    ]);
    expect(json.volumes.workers.map((x: { name: string; state: string }) => [x.name, x.state])).toEqual([
      ["w1", "running"],
      ["w2", "stalled"],
    ]);
    const text = volumesSection.render(json.volumes);
    expect(text).toMatch(/w2\s+stalled/);
    expect(text).toMatch(/destroying\s+1\s+0\s+1/);
  });
});
