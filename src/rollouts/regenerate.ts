// Regenerating robots' director metadata, lazily (sql/600_rollouts_director.sql):
//  - readDirector: a robot's read. A clean, unexpired row is served as stored, with no lock and
//    no write. A dirty one is regenerated in one transaction holding the robot's row lock, so
//    concurrent reads wait for the first and then find it clean: it is signed once.
//  - regenerateBatch: the sweep's unit. Schedules and reads a batch (one short transaction),
//    signs without holding any lock, and stores in one statement that skips every robot whose
//    generation moved meanwhile (a newer change): those stay dirty and are signed again.
import type pg from "pg";
import { transaction } from "../db/pool.ts";
import type { SecretBox } from "../lib/secrets.ts";
import { type DirectorKeys, ensureDirector, loadDirectorKeys } from "./director-keys.ts";
import { type DirectorDocuments, type EcuTarget, signDirectorDocuments } from "./director-documents.ts";

export interface StoredDirector {
  rootVersion: number;
  targets: string;
  snapshot: string;
  timestamp: string;
}

interface DirectorRow {
  robot_id: string;
  team_id: string;
  dirty: boolean;
  generation: string;
  targets_version: number;
  snapshot_version: number;
  timestamp_version: number;
  root_version: number | null;
  fresh: boolean;
  now_ms: string;
  targets_document: string | null;
  snapshot_document: string | null;
  timestamp_document: string | null;
}

const ROW = `d.robot_id, d.team_id, d.dirty, d.generation::text, d.targets_version, d.snapshot_version, d.timestamp_version,
             d.root_version, coalesce(d.expires > now(), false) as fresh, extract(epoch from now()) * 1000 as now_ms,
             d.targets_document, d.snapshot_document, d.timestamp_document`;

const stored = (r: DirectorRow): StoredDirector => ({
  rootVersion: r.root_version as number,
  targets: r.targets_document as string,
  snapshot: r.snapshot_document as string,
  timestamp: r.timestamp_document as string,
});

async function targetsOf(c: pg.ClientBase, robotIds: string[]): Promise<Map<string, EcuTarget[]>> {
  const { rows } = await c.query<EcuTarget>("select * from gk_private.director_targets($1::uuid[])", [robotIds]);
  const by = new Map<string, EcuTarget[]>();
  for (const r of rows) by.set(r.robot_id, [...(by.get(r.robot_id) ?? []), r]);
  return by;
}

function sign(keys: DirectorKeys, r: DirectorRow, ecus: EcuTarget[]): DirectorDocuments {
  return signDirectorDocuments(
    keys.online,
    { targets: r.targets_version + 1, snapshot: r.snapshot_version + 1, timestamp: r.timestamp_version + 1 },
    Number(r.now_ms),
    keys.lifetimes,
    ecus,
  );
}

async function store(c: pg.ClientBase, items: { row: DirectorRow; rootVersion: number; docs: DirectorDocuments }[]): Promise<Set<string>> {
  const sorted = [...items].sort((a, b) => (a.row.robot_id < b.row.robot_id ? -1 : 1));
  const { rows } = await c.query<{ director_store: string }>(
    "select gk_private.director_store($1::uuid[], $2::bigint[], $3::int[], $4::int[], $5::timestamptz[], $6::text[], $7::text[], $8::text[])",
    [
      sorted.map((i) => i.row.robot_id),
      sorted.map((i) => i.row.generation),
      sorted.map((i) => i.row.timestamp_version),
      sorted.map((i) => i.rootVersion),
      sorted.map((i) => i.docs.expires),
      sorted.map((i) => i.docs.targets),
      sorted.map((i) => i.docs.snapshot),
      sorted.map((i) => i.docs.timestamp),
    ],
  );
  return new Set(rows.map((r) => r.director_store));
}

export interface ReadResult {
  director: StoredDirector;
  /** This read signed (the robot was dirty, expired or never signed). */
  signed: boolean;
}

/** A robot's director metadata, regenerated first if dirty. Null when the robot is gone (or not of the team). */
export async function readDirector(pool: pg.Pool, box: SecretBox, robotId: string, teamId: string): Promise<ReadResult | null> {
  const fast = await pool.query<DirectorRow>(`select ${ROW} from gk_public.robot_directors d where d.robot_id = $1 and d.team_id = $2`, [
    robotId,
    teamId,
  ]);
  const clean = fast.rows[0];
  if (clean && !clean.dirty && clean.fresh) return { director: stored(clean), signed: false };

  const c = await pool.connect();
  try {
    await ensureDirector(c, box, teamId);
    return await transaction(c, async () => {
      // Lock order: rollout_robots (director_schedule), then the robot_directors row.
      await c.query("select gk_private.director_schedule(array[$1]::uuid[])", [robotId]);
      await c.query(
        `insert into gk_public.robot_directors (robot_id, team_id)
         select r.id, r.team_id from gk_public.robots r where r.id = $1 and r.team_id = $2
         on conflict (robot_id) do nothing`,
        [robotId, teamId],
      );
      const row = (
        await c.query<DirectorRow>(`select ${ROW} from gk_public.robot_directors d where d.robot_id = $1 and d.team_id = $2 for update`, [
          robotId,
          teamId,
        ])
      ).rows[0];
      if (!row) return null;
      if (!row.dirty && row.fresh) return { director: stored(row), signed: false };
      const keys = await loadDirectorKeys(c, box, teamId);
      const docs = sign(keys, row, (await targetsOf(c, [robotId])).get(robotId) ?? []);
      const done = await store(c, [{ row, rootVersion: keys.rootVersion, docs }]);
      if (!done.has(robotId)) throw new Error(`robot ${robotId}: director row changed under its lock`);
      return {
        director: { rootVersion: keys.rootVersion, targets: docs.targets, snapshot: docs.snapshot, timestamp: docs.timestamp },
        signed: true,
      };
    });
  } finally {
    c.release();
  }
}

export interface BatchResult {
  /** Robots whose new documents were stored. */
  stored: string[];
  /** Robots changed while their documents were signed: still dirty, signed again later. */
  raced: string[];
}

/**
 * Regenerates a batch of robots (the sweep). `beforeStore` is a test hook: it runs after signing
 * and before storing, where a concurrent change would race.
 */
export async function regenerateBatch(
  c: pg.ClientBase,
  box: SecretBox,
  robotIds: string[],
  beforeStore?: () => Promise<void>,
): Promise<BatchResult> {
  const { rows: teams } = await c.query<{ team_id: string }>(
    "select distinct team_id from gk_public.robot_directors where robot_id = any($1::uuid[])",
    [robotIds],
  );
  for (const t of teams) await ensureDirector(c, box, t.team_id);
  const { rows, targets, keys } = await transaction(c, async () => {
    await c.query("select gk_private.director_schedule($1::uuid[])", [robotIds]);
    const read = await c.query<DirectorRow>(
      `select ${ROW} from gk_public.robot_directors d where d.robot_id = any($1::uuid[]) and (d.dirty or d.expires <= now())`,
      [robotIds],
    );
    const byTeam = new Map<string, DirectorKeys>();
    for (const t of new Set(read.rows.map((r) => r.team_id))) byTeam.set(t, await loadDirectorKeys(c, box, t));
    return { rows: read.rows, targets: await targetsOf(c, robotIds), keys: byTeam };
  });
  // No lock is held while signing.
  const items = rows.map((row) => {
    const k = keys.get(row.team_id) as DirectorKeys;
    return { row, rootVersion: k.rootVersion, docs: sign(k, row, targets.get(row.robot_id) ?? []) };
  });
  await beforeStore?.();
  const done = items.length ? await store(c, items) : new Set<string>();
  return { stored: [...done], raced: rows.map((r) => r.robot_id).filter((id) => !done.has(id)) };
}
