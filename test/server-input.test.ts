// Bad input over HTTP is the client's error: malformed percent-encoding, control characters, a
// path too long, a TUF target path over 1,024 bytes are 4xx on every route (decoded once by the
// server before routing), never 500s with a stack in the log; GraphQL failures carry a clear
// message and a code, and an unexpected one is masked for the client and logged as one JSON line.
import { describe, expect, it } from "vitest";
import { GraphQLError } from "postgraphile/graphql";
import { makeMaskError } from "../src/server/graphql-errors.ts";
import { fromPool } from "../src/tuf/db.ts";
import { initRepository } from "../src/tuf/init.ts";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";
import { testServices } from "./helpers/jobs.ts";
import { capturedLog } from "./helpers/log.ts";
import { TestFsBlobStore } from "./tuf/helpers/fs-blobs.ts";
import { box, tmpDir } from "./tuf/helpers/tuf.ts";

const db = await createTestDb();
const { log, lines } = capturedLog("debug");
await db.query("insert into gk_public.teams (name) values ('input')");
await initRepository(fromPool(db.pool), box, { team: "input", keysDir: tmpDir("input"), keys: 1, threshold: 1, bins: 4 });
const api = await httpGraphql(db, { services: testServices({ log, blobs: new TestFsBlobStore(tmpDir("input-blobs")) }) });
const errorLines = () => lines.filter((l) => l.level >= 50);

async function get(path: string, token?: string) {
  const res = await fetch(`${api.url}${path}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  return { status: res.status, body: await res.text() };
}

describe("request paths", () => {
  it("answers 4xx, never 500, to undecodable or hostile paths, with or without a token", async () => {
    lines.length = 0;
    const cases: [string, number][] = [
      ["/certificates/%E0%A4%A/key.pem", 400],
      ["/certificates/%zz/key.pem", 400],
      ["/provisioning-credentials/%ff%fe/bundle", 400],
      ["/certificates/not-a-uuid/key.pem", 404],
      ["/tuf/%00/metadata/root.json", 400],
      ["/tuf/in%00put/metadata/1.root.json", 400],
      ["/tuf/input/metadata/%0a.root.json", 400],
      ["/tuf/%E0%A4%A/metadata/1.root.json", 400],
      [`/tuf/input/targets/${"a".repeat(1100)}`, 404],
      [`/tuf/input/targets/${"abcd/".repeat(300)}x`, 404],
      [`/tuf/input/targets/${"b".repeat(300)}`, 404],
      [`/graphql/${"x".repeat(5000)}`, 414],
      ["/ca/%zz", 400],
    ];
    for (const [path, status] of cases) {
      expect((await get(path)).status, `${path.slice(0, 60)} without a token`).toBe(
        status === 404 && path.startsWith("/certificates") ? 401 : status,
      );
      expect((await get(path, api.tokens.admin)).status, `${path.slice(0, 60)} with a token`).toBe(status);
    }
    expect(errorLines()).toEqual([]);
  });
});

describe("GraphQL errors", () => {
  it("says NOT_FOUND when a delete by key matches nothing", async () => {
    const res = await api.exec(
      "admin",
      `mutation { deleteTeamByRowId(input: { rowId: "00000000-0000-4000-8000-000000000000" }) { deletedTeamId } }`,
    );
    expect(res.errors?.[0]).toMatchObject({
      message: "nothing was deleted: no row of teams matches (or this token may not change it)",
      extensions: { code: "NOT_FOUND" },
    });
  });

  it("maps SQLSTATEs to codes and keeps PostgreSQL's message and detail", async () => {
    const create = `mutation($n: String!) { createTeam(input: { team: { name: $n } }) { team { name } } }`;
    expect((await api.exec("admin", create, { n: "twice" })).errors).toBeUndefined();
    const dup = await api.exec("admin", create, { n: "twice" });
    expect(dup.errors?.[0]).toMatchObject({
      extensions: { code: "ALREADY_EXISTS", sqlstate: "23505", detail: "Key (name)=(twice) already exists." },
    });
    const bad = await api.exec("admin", create, { n: "Not Valid!" });
    expect(bad.errors?.[0]).toMatchObject({ extensions: { code: "BAD_INPUT", sqlstate: "23514" } });
    const viewer = await api.exec("viewer", create, { n: "sneaky" });
    expect(viewer.errors?.[0]).toMatchObject({ extensions: { code: "PERMISSION_DENIED", sqlstate: "42501" } });
  });

  // Nothing in the schema fails unexpectedly on purpose, so the server's maskError is called
  // directly with what grafast hands it for an error thrown inside a plan (a plain Error).
  it("masks an unexpected error for the client and logs it as one JSON line", async () => {
    lines.length = 0;
    const thrown = new GraphQLError("boom", { path: ["allTeams"], originalError: new Error("connection string postgres://secret@db") });
    const masked = makeMaskError(log)(thrown);
    expect(masked.message).toMatch(/^internal error \(id [0-9a-f]{12}; the server log has the details\)$/);
    expect(masked.message).not.toContain("secret");
    expect(masked.extensions).toMatchObject({ code: "INTERNAL_SERVER_ERROR" });
    expect(masked.path).toEqual(["allTeams"]);
    expect(lines).toHaveLength(1);
    const [logged] = errorLines();
    expect(logged).toMatchObject({ msg: "GraphQL operation failed unexpectedly", errorId: masked.extensions.errorId, path: "allTeams" });
    expect(logged.err.stack).toContain("connection string");
  });
});
