// The admin API's audit log: every mutation through GraphQL leaves a row in
// gk_public.audit_events and one JSON log line — which token (name and id, never the secret),
// which fields and arguments (bounded), when, the outcome. Admins read it; viewers cannot.
import { describe, expect, it } from "vitest";
import { createTestDb } from "./helpers/db.ts";
import { httpGraphql } from "./helpers/graphql.ts";
import { testServices } from "./helpers/jobs.ts";
import { capturedLog } from "./helpers/log.ts";

const db = await createTestDb();
const { log, lines } = capturedLog("info");
const api = await httpGraphql(db, { services: testServices({ log }) });
const events = async () => (await db.query(`select * from gk_public.audit_events order by id`)).rows;

describe("audit log", () => {
  it("records a team created and deleted through GraphQL, with the token's name", async () => {
    const created = await api.exec("admin", `mutation { createTeam(input: { team: { name: "audited" } }) { team { rowId } } }`);
    expect(created.errors).toBeUndefined();
    const deleted = await api.exec("admin", `mutation Cleanup($n: String!) { deleteTeamByName(input: { name: $n }) { deletedTeamId } }`, {
      n: "audited",
    });
    expect(deleted.errors).toBeUndefined();
    const rows = await events();
    expect(rows.map((r) => [r.fields, r.outcome, r.token_name])).toEqual([
      [["createTeam"], "succeeded", "test admin"],
      [["deleteTeamByName"], "succeeded", "test admin"],
    ]);
    const del = rows[1];
    expect(del).toMatchObject({ role: "gk_admin", operation: "mutation", operation_name: "Cleanup", error: null });
    expect(del.arguments).toEqual({ deleteTeamByName: { input: { name: "audited" } } });
    expect(del.token_id).toBe((await db.query(`select id from gk_private.api_tokens where name = 'test admin'`)).rows[0].id);
    expect(JSON.stringify(rows)).not.toContain(api.tokens.admin);
    const line = lines.find((l) => l.audit?.fields?.[0] === "deleteTeamByName");
    expect(line).toMatchObject({
      level: 30,
      audit: { token: { name: "test admin" }, outcome: "succeeded", arguments: { deleteTeamByName: { input: { name: "audited" } } } },
    });
    expect(JSON.stringify(lines)).not.toContain(api.tokens.admin);
  });

  it("records refused and failed mutations with their error, and not queries", async () => {
    await db.query("delete from gk_public.audit_events");
    await api.exec("viewer", `mutation { createTeam(input: { team: { name: "sneaky" } }) { team { rowId } } }`);
    await api.exec("admin", `mutation { deleteTeamByRowId(input: { rowId: "00000000-0000-4000-8000-000000000000" }) { deletedTeamId } }`);
    await api.exec("admin", `{ allTeams { totalCount } }`);
    const rows = await events();
    expect(rows.map((r) => [r.token_name, r.fields[0], r.outcome])).toEqual([
      ["test viewer", "createTeam", "failed"],
      ["test admin", "deleteTeamByRowId", "failed"],
    ]);
    expect(rows[0].error).toMatch(/permission denied/);
    expect(rows[1].error).toMatch(/No values were deleted/);
  });

  it("keeps arguments bounded", async () => {
    await db.query("delete from gk_public.audit_events");
    const names = Array.from({ length: 500 }, (_, i) => `t${i}-${"x".repeat(400)}`);
    const res = await api.exec("admin", `mutation($n: String!) { createTeam(input: { team: { name: $n } }) { team { rowId } } }`, {
      n: names.join(","),
    });
    expect(res.errors?.[0].message).toBeDefined();
    const [row] = await events();
    const name = row.arguments.createTeam.input.team.name as string;
    expect(name.length).toBeLessThan(400);
    expect(name).toMatch(/… \(\d+ chars\)$/);
  });

  it("is readable by admins only", async () => {
    const admin = await api.exec("admin", `{ allAuditEvents(orderBy: AT_DESC, first: 5) { nodes { tokenName fields outcome at } } }`);
    expect(admin.errors).toBeUndefined();
    expect(admin.data.allAuditEvents.nodes.length).toBeGreaterThan(0);
    const viewer = await api.exec("viewer", `{ allAuditEvents { nodes { tokenName } } }`);
    expect(viewer.errors?.[0].message).toMatch(/permission denied for table audit_events/);
  });

  it("is pruned by the retention sweep's kind audit_events, oldest first and bounded", async () => {
    for (const n of ["old-1", "old-2"])
      await api.exec("admin", `mutation { createTeam(input: { team: { name: "${n}" } }) { team { rowId } } }`);
    await db.query(`update gk_public.audit_events set at = now() - interval '500 days'`);
    const total = (await events()).length;
    expect(total).toBeGreaterThan(1);
    const { rows } = await db.query(`select gk_private.retention_prune__audit_events(now() - interval '400 days', 1) as n`);
    expect(Number(rows[0].n)).toBe(1);
    expect((await events()).length).toBe(total - 1);
    expect((await db.query(`select (gk_private.retention_prune('audit_events')).deleted as n`)).rows[0].n).toBe(String(total - 1));
  });
});
