// Images through the admin API: admins create, list and delete a team's images; viewers read
// only; bad input is refused with the constraint's name and writes nothing; images go with
// their team (and their blobs with the team's prefix).
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { SCHEMA_FILE } from "../../src/server/schema-sdl.ts";
import { createTestDb } from "../helpers/db.ts";
import { imageDigests, insertImages, insertTeam } from "../helpers/fixtures/index.ts";
import { httpGraphql } from "../helpers/graphql.ts";

const db = await createTestDb();
const api = await httpGraphql(db);

const CREATE = `mutation($image: ImageInput!) { createImage(input: { image: $image }) { image { rowId name version blobKey length sha256 hardwareIds } } }`;

function imageInput(teamId: string, over: Record<string, unknown> = {}) {
  const bytes = Buffer.from("firmware image bytes");
  const d = imageDigests(bytes);
  return {
    teamId,
    name: "robot-fw",
    version: "1.2.3",
    blobKey: `teams/${teamId}/images/robot-fw/1.2.3.bin`,
    length: String(d.length),
    sha256: d.sha256,
    sha512: d.sha512,
    hardwareIds: ["arm64-board-a", "arm64-board-b"],
    ...over,
  };
}

async function imageCount(): Promise<number> {
  return (await db.query("select count(*)::int as n from gk_public.images")).rows[0].n;
}

describe("images through GraphQL", () => {
  it("an admin creates an image and reads it through its team; a viewer reads it", async () => {
    const team = await insertTeam(db, { name: "img-admin" });
    const input = imageInput(team.id);
    const created = await api.exec("admin", CREATE, { image: input });
    expect(created.errors).toBeUndefined();
    expect(created.data.createImage.image).toMatchObject({
      name: "robot-fw",
      version: "1.2.3",
      blobKey: input.blobKey,
      length: input.length,
      sha256: input.sha256,
      hardwareIds: input.hardwareIds,
    });
    const read = await api.exec(
      "viewer",
      `query($t: UUID!) { teamByRowId(rowId: $t) { imagesByTeamId { nodes { name version sha512 } } } }`,
      { t: team.id },
    );
    expect(read.errors).toBeUndefined();
    expect(read.data.teamByRowId.imagesByTeamId.nodes).toEqual([{ name: "robot-fw", version: "1.2.3", sha512: input.sha512 }]);
  });

  it("a viewer can neither create nor delete an image", async () => {
    const team = await insertTeam(db, { name: "img-viewer" });
    const [image] = await insertImages(db, { team });
    const before = await imageCount();
    const create = await api.exec("viewer", CREATE, { image: imageInput(team.id) });
    expect(create.errors?.[0].message).toMatch(/permission denied/);
    const del = await api.exec("viewer", `mutation($id: UUID!) { deleteImageByRowId(input: { rowId: $id }) { deletedImageId } }`, {
      id: image.id,
    });
    expect(del.errors?.[0].message).toMatch(/permission denied/);
    expect(await imageCount()).toBe(before);
  });

  it("refuses bad input with the constraint that failed and writes nothing", async () => {
    const team = await insertTeam(db, { name: "img-bad" });
    const other = await insertTeam(db, { name: "img-other" });
    await insertImages(db, { team, name: "robot-fw", versions: ["1.2.3"] });
    const before = await imageCount();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ blobKey: `teams/${other.id}/images/robot-fw.bin` }, /images_blob_key_under_team/],
      [{ blobKey: `teams/${team.id}/images/../tuf/1.root.json` }, /images_blob_key_under_team/],
      [{ blobKey: `teams/${team.id}/images/` }, /images_blob_key_under_team/],
      [{ sha256: "AB".repeat(32) }, /images_sha256_check/],
      [{ sha512: "ab".repeat(32) }, /images_sha512_check/],
      [{ length: "0" }, /images_length_check/],
      [{ length: String(2 ** 40 * 64 + 1) }, /images_length_check/],
      [{ hardwareIds: [] }, /images_hardware_ids_check/],
      [{ hardwareIds: ["a", "a"] }, /images_hardware_ids_check/],
      [{ hardwareIds: ["has space"] }, /images_hardware_ids_check/],
      [{ name: "../x" }, /images_name_check/],
      [{ version: "" }, /images_version_check/],
      [{ version: "1.2.3" }, /images_team_name_version_key/],
    ];
    for (const [over, error] of bad) {
      const res = await api.exec("admin", CREATE, { image: imageInput(team.id, over) });
      expect(res.errors?.[0].message, JSON.stringify(over)).toMatch(error);
    }
    expect(await imageCount()).toBe(before);
  });

  it("images are immutable (no update mutation), an admin deletes one, a team delete takes its images", async () => {
    expect(fs.readFileSync(SCHEMA_FILE, "utf8")).not.toMatch(/updateImage/);
    const team = await insertTeam(db, { name: "img-gone" });
    const images = await insertImages(db, { team, count: 3 });
    const del = await api.exec("admin", `mutation($id: UUID!) { deleteImageByRowId(input: { rowId: $id }) { image { version } } }`, {
      id: images[0].id,
    });
    expect(del.errors).toBeUndefined();
    expect(del.data.deleteImageByRowId.image.version).toBe("1.0.1");
    await db.query("delete from gk_public.teams where id = $1", [team.id]);
    expect((await db.query("select count(*)::int as n from gk_public.images where team_id = $1", [team.id])).rows[0].n).toBe(0);
    // Their bytes lie under the prefix the team delete sent to the bin.
    const { rows } = await db.query("select ref from gk_public.purge_items where team_id = $1", [team.id]);
    expect(images.every((i) => i.blob_key.startsWith(rows[0].ref))).toBe(true);
  });
});
