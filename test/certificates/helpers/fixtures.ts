// Test data for the certificate lifecycle: teams, robots, credentials, certificates in a given state.
import type { TestDb } from "../../helpers/db.ts";

export async function makeTeam(db: TestDb, name: string): Promise<string> {
  const { rows } = await db.query("insert into gk_public.teams (name) values ($1) returning id", [name]);
  return rows[0].id;
}

export async function makeRobots(db: TestDb, teamId: string, n: number, prefix = "robot"): Promise<string[]> {
  const { rows } = await db.query(
    `insert into gk_public.robots (team_id, name)
     select $1, $2 || '-' || g from generate_series(1, $3) g returning id`,
    [teamId, prefix, n],
  );
  return rows.map((r) => r.id);
}

/** Certificates already issued at a CA (fake handles: for tests that never call a CA). */
export async function makeIssuedRobotCerts(db: TestDb, robotIds: string[], serials = true): Promise<string[]> {
  const { rows } = await db.query(
    `insert into gk_public.certificates (owner_team_id, robot_id, profile, status, ca_ref, serial, not_after, issued_at)
     select r.team_id, r.id, 'robot', 'issued', 'ref-' || r.id,
            case when $2 then to_hex((random() * 2147483647)::int + 1) end, now() + interval '1 year', now()
       from gk_public.robots r where r.id = any($1::uuid[])
     returning id`,
    [robotIds, serials],
  );
  return rows.map((r) => r.id);
}

export async function certStatuses(db: TestDb, ids: string[]): Promise<Record<string, number>> {
  const { rows } = await db.query(
    "select status, count(*)::int as n from gk_public.certificates where id = any($1::uuid[]) group by status",
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
