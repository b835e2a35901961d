// Test data for workers and volumes, one builder per table, set-based (a builder makes n rows
// in one statement) with defaults that satisfy the table's constraints for the requested state.
import type { TestDb } from "../../helpers/db.ts";

type Db = Pick<TestDb, "query">;

export interface WorkerOpts {
  state?: "running" | "stalled" | "landing" | "landed" | "retiring";
  address?: string;
  /** Heartbeat expiry relative to now, e.g. '1 minute' or '-1 minute'. */
  expiresIn?: string;
}

export async function makeWorker(db: Db, name: string, opts: WorkerOpts = {}): Promise<string> {
  const state = opts.state ?? "running";
  const serving = ["running", "landing", "retiring"].includes(state);
  const { rows } = await db.query(
    `insert into gk_public.workers (name, state, address, last_heartbeat_at, expires_at, stalled_since)
     values ($1, $2, $3, case when $4 then now() end, case when $4 then now() + $5::interval end,
             case when $2 = 'stalled' then now() end)
     returning id`,
    [name, state, opts.address ?? (serving ? "https://127.0.0.1:1" : null), serving, opts.expiresIn ?? "1 minute"],
  );
  return rows[0].id;
}

export async function makeTeam(db: Db, name: string): Promise<string> {
  const { rows } = await db.query("insert into gk_public.teams (name) values ($1) returning id", [name]);
  return rows[0].id;
}

export async function makeBuilds(db: Db, teamId: string, n: number, status = "running"): Promise<number[]> {
  const { rows } = await db.query(
    `insert into gk_public.builds (team_id, status, completed_at)
     select $1, $2, case when $2 <> 'running' then now() end from generate_series(1, $3) returning id`,
    [teamId, status, n],
  );
  return rows.map((r) => Number(r.id));
}

/** One container per build id (or n ownerless containers when builds is a number). */
export async function makeContainers(db: Db, workerId: string, builds: number[] | number): Promise<number[]> {
  const ids = typeof builds === "number" ? Array.from({ length: builds }, () => null) : builds;
  const { rows } = await db.query(
    `insert into gk_public.containers (worker_id, build_id)
     select $1, b from unnest($2::bigint[]) b returning id`,
    [workerId, ids],
  );
  return rows.map((r) => Number(r.id));
}

export interface VolumeRow {
  id: number;
  handle: string;
}

/**
 * Volumes in a state, one per owner container (or per parent when parents are given: copy-on-write
 * children, each owned by the container at the same index). Inserted directly (no agent).
 */
export async function makeVolumes(
  db: Db,
  workerId: string,
  opts: { containers: (number | null)[]; parents?: number[]; state?: "creating" | "created" | "failed" },
): Promise<VolumeRow[]> {
  const state = opts.state ?? "created";
  const { rows } = await db.query(
    `insert into gk_public.volumes (worker_id, state, container_id, parent_id, parent_state)
     select $1, $2, c, p, case when p is not null then 'created' end
       from unnest($3::bigint[], $4::bigint[]) as x(c, p)
     returning id, handle::text`,
    [workerId, state, opts.containers, opts.parents ?? opts.containers.map(() => null)],
  );
  return rows.map((r) => ({ id: Number(r.id), handle: r.handle }));
}

export async function volumeStates(db: Db, ids: number[]): Promise<Record<string, number>> {
  const { rows } = await db.query("select state, count(*)::int as n from gk_public.volumes where id = any($1::bigint[]) group by state", [
    ids,
  ]);
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

export async function countRows(db: Db, table: string, where = "true"): Promise<number> {
  const { rows } = await db.query(`select count(*)::int as n from gk_public.${table} where ${where}`);
  return rows[0].n;
}
