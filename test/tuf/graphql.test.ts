// Operators through the admin API: add and remove targets with the tufAddTargets /
// tufRemoveTargets mutations, read repository status; a viewer cannot change anything; the
// published result is what a tuf-js client sees.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { inProcessGraphql } from "../helpers/graphql.ts";
import { Client, fakeTarget, publishNow, setupRepository, type TufFixture, verifyEveryRepository } from "./helpers/tuf.ts";

const db = await createTestDb();
verifyEveryRepository(db);
const gql = await inProcessGraphql(db);
let fx: TufFixture;

beforeAll(async () => {
  fx = await setupRepository(db, { bins: 16 });
});
afterAll(() => fx?.close());

const ADD = `mutation ($team: UUID!, $targets: JSON!) { tufAddTargets(input: { teamId: $team, targets: $targets }) { result } }`;
const REMOVE = `mutation ($team: UUID!, $paths: [String]!) { tufRemoveTargets(input: { teamId: $team, paths: $paths }) { result } }`;

describe("TUF through GraphQL", () => {
  it("admin adds and removes a batch; the client follows; status shows the published versions", async () => {
    const batch = Array.from({ length: 50 }, (_, i) => fakeTarget(i, "gql"));
    const added = await gql.exec("admin", ADD, { team: fx.teamId, targets: batch });
    expect(added.errors).toBeUndefined();
    expect(added.data.tufAddTargets.result).toBe(50);
    await publishNow(db, fx.blobs);
    const client = await Client.create(fx);
    let u = await client.refresh();
    expect((await u.getTargetInfo(batch[7].path))?.length).toBe(batch[7].length);

    const removed = await gql.exec("admin", REMOVE, { team: fx.teamId, paths: [batch[7].path] });
    expect(removed.data.tufRemoveTargets.result).toBe(1);
    await publishNow(db, fx.blobs);
    u = await client.refresh();
    expect(await u.getTargetInfo(batch[7].path)).toBeUndefined();

    const status = await gql.exec(
      "viewer",
      `{ allTufRepositoryStatuses { nodes { teamName dirtyRoles pendingUploads publishedTimestampVersion timestampVersion } } }`,
    );
    expect(status.errors).toBeUndefined();
    const [row] = status.data.allTufRepositoryStatuses.nodes;
    expect(row).toMatchObject({ teamName: fx.team, dirtyRoles: "0", pendingUploads: "0" });
    expect(row.publishedTimestampVersion).toBe(row.timestampVersion);
  });

  it("a viewer cannot add targets, and bad input is a clear error", async () => {
    const viewer = await gql.exec("viewer", ADD, { team: fx.teamId, targets: [fakeTarget(1, "viewer")] });
    expect(viewer.errors?.[0].message).toMatch(/permission denied/);
    const bad = await gql.exec("admin", ADD, { team: fx.teamId, targets: [{ path: "x", length: 1, hashes: { sha256: "nothex" } }] });
    expect(bad.errors?.[0].message).toMatch(/target "x": hashes: sha256 must be lower-case hex/);
  });
});
