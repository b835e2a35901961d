// Regenerating robots' director metadata, lazily (sql/600_rollouts_director.sql):
//  - readDirector: a robot's read. A clean (not flagged, no pending rollout row), unexpired row
//    is served as stored, with no lock and no write. A dirty one is regenerated in one transaction holding the robot's row lock, so
//    concurrent reads wait for the first and then find it clean: it is signed once.
//  - regenerateBatch: the sweep's unit. Reads a batch (one statement), signs without holding any
//    lock, and stores in one statement that also schedules the pending rollout rows it signed and
//    skips every robot whose generation or pending row moved meanwhile (a newer change): those
//    stay dirty and are signed again.
//  - regenerateInBatches: the sweep, batches pipelined so the database and the signing overlap.
import type pg from "pg";
import type { SecretBox } from "../lib/secrets.ts";
import type { SigningKey } from "../tuf/keys.ts";
import { type DirectorDocuments, type EcuTarget, signDirectorDocuments } from "./director-documents.ts";
import { ensureDirector, onlineKey, type PresentedCertificate } from "./director-keys.ts";

export interface StoredDirector {
  rootVersion: number;
  targets: string;
  snapshot: string;
  timestamp: string;
}

/** A row of gk_private.director_prepare. */
interface Prepared {
  robot_id: string;
  team_id: string;
  dirty: boolean;
  fresh: boolean;
  generation: string;
  /** The robot's pending rollout row, which director_store schedules with the documents. */
  pending_rollout_id: string | null;
  targets_version: number;
  snapshot_version: number;
  timestamp_version: number;
  now_ms: number;
  /** The stored documents (null before the first signing). */
  targets: string | null;
  snapshot: string | null;
  timestamp: string | null;
  /** Null when the team has no director yet. */
  root_version: number | null;
  online_key_id: string | null;
  targets_s: number;
  snapshot_s: number;
  timestamp_s: number;
  ecus: EcuTarget[];
}

interface Signed {
  row: Prepared;
  docs: DirectorDocuments;
}

const PREPARE = "select * from gk_private.director_prepare($1::uuid[], $2)";

function sign(key: SigningKey, r: Prepared): Signed {
  const docs = signDirectorDocuments(
    key,
    { targets: r.targets_version + 1, snapshot: r.snapshot_version + 1, timestamp: r.timestamp_version + 1 },
    r.now_ms,
    { targets: r.targets_s, snapshot: r.snapshot_s, timestamp: r.timestamp_s },
    r.ecus,
  );
  return { row: r, docs };
}

async function store(c: pg.ClientBase, items: Signed[]): Promise<Set<string>> {
  const sorted = [...items].sort((a, b) => (a.row.robot_id < b.row.robot_id ? -1 : 1));
  const { rows } = await c.query<{ director_store: string }>(
    "select gk_private.director_store($1::uuid[], $2::bigint[], $3::uuid[], $4::int[], $5::int[], $6::timestamptz[], $7::text[], $8::text[], $9::text[])",
    [
      sorted.map((i) => i.row.robot_id),
      sorted.map((i) => i.row.generation),
      sorted.map((i) => i.row.pending_rollout_id),
      sorted.map((i) => i.row.timestamp_version),
      sorted.map((i) => i.row.root_version),
      sorted.map((i) => i.docs.expires),
      sorted.map((i) => i.docs.targets),
      sorted.map((i) => i.docs.snapshot),
      sorted.map((i) => i.docs.timestamp),
    ],
  );
  return new Set(rows.map((r) => r.director_store));
}

/** Rows of teams without a director yet: create those directors, prepare again. */
async function withDirectors(c: pg.ClientBase, box: SecretBox, rows: Prepared[], again: () => Promise<Prepared[]>): Promise<Prepared[]> {
  const missing = [...new Set(rows.filter((r) => r.online_key_id === null).map((r) => r.team_id))];
  if (!missing.length) return rows;
  for (const team of missing) await ensureDirector(c, box, team);
  return again();
}

export interface ReadResult {
  director: StoredDirector;
  /** This read signed (the robot was dirty, expired or never signed). */
  signed: boolean;
}

const servable = (r: Prepared): StoredDirector => ({
  rootVersion: r.root_version as number,
  targets: r.targets as string,
  snapshot: r.snapshot as string,
  timestamp: r.timestamp as string,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** director_store's call with its arguments as literals (for a multi-statement simple query). */
function storeLiteral(c: pg.ClientBase, items: Signed[]): string {
  const columns: [(i: Signed) => string | number | null, string][] = [
    [(i) => i.row.robot_id, "uuid"],
    [(i) => i.row.generation, "bigint"],
    [(i) => i.row.pending_rollout_id, "uuid"],
    [(i) => i.row.timestamp_version, "int"],
    [(i) => i.row.root_version, "int"],
    [(i) => i.docs.expires.toISOString(), "timestamptz"],
    [(i) => i.docs.targets, "text"],
    [(i) => i.docs.snapshot, "text"],
    [(i) => i.docs.timestamp, "text"],
  ];
  const literal = (x: string | number | null) => (x === null ? "null" : c.escapeLiteral(String(x)));
  const args = columns.map(([get, type]) => `array[${items.map((i) => literal(get(i))).join(",")}]::${type}[]`);
  return `select gk_private.director_store(${args.join(", ")})`;
}

/** A row of gk_private.director_read: the stored documents of a clean robot, else director_prepare's row. */
type Read = Prepared & { clean: boolean };

/**
 * A robot's director metadata, regenerated first if dirty. Null when the robot is gone (or not
 * of the team). `presented`: the robot's certificate, through which the robot API's gk_peer
 * connection reads the online key (onlineKey). One simple query opens the transaction and calls
 * director_read: a clean robot's documents come back as stored (no lock, no write; the read-only
 * COMMIT, which flushes nothing, is sent after they are returned, and the connection goes back to
 * the pool when it is done). A dirty robot's row comes back locked with what signing needs, and
 * the store goes with COMMIT: two round trips, since every round trip waits for a CPU on a loaded
 * machine. The documents are returned only after COMMIT: a version served before it is durable
 * could, after a crash, be signed again with other contents.
 */
export async function readDirector(
  pool: pg.Pool,
  box: SecretBox,
  robotId: string,
  teamId: string,
  presented?: PresentedCertificate,
): Promise<ReadResult | null> {
  if (!UUID.test(robotId)) throw new Error(`not a robot id: ${robotId.slice(0, 40)}`);
  if (!UUID.test(teamId)) throw new Error(`not a team id: ${teamId.slice(0, 40)}`);
  const c = await pool.connect();
  let open = true; // from the BEGIN below until COMMIT was sent: a failure rolls back
  let releasing = false;
  try {
    const first = (await c.query(`begin; select * from gk_private.director_read('${robotId}', '${teamId}')`)) as unknown as [
      pg.QueryResult,
      pg.QueryResult<Read>,
    ];
    const read = first[1].rows[0];
    if (read?.clean) {
      open = false;
      releasing = true;
      c.query("commit").then(
        () => c.release(),
        (e: Error) => c.release(e),
      );
      return { director: servable(read), signed: false };
    }
    const prepare = async () => (await c.query<Prepared>(PREPARE, [[robotId], true])).rows.filter((r) => r.team_id === teamId);
    const [row] = read ? await withDirectors(c, box, [read], prepare) : [];
    if (!row || (!row.dirty && row.fresh)) {
      await c.query("commit");
      open = false;
      return row ? { director: servable(row), signed: false } : null;
    }
    const signed = sign(await onlineKey(c, box, teamId, row.online_key_id as string, presented), row);
    const done = (await c.query(`${storeLiteral(c, [signed])}; commit`)) as unknown as [pg.QueryResult<{ director_store: string }>];
    open = false;
    // Cannot happen under the row locks; if it did, nothing was stored.
    if (done[0].rows[0]?.director_store !== robotId) throw new Error(`robot ${robotId}: director row changed under its lock`);
    const { docs } = signed;
    return {
      director: { rootVersion: row.root_version as number, targets: docs.targets, snapshot: docs.snapshot, timestamp: docs.timestamp },
      signed: true,
    };
  } catch (e) {
    if (open) await c.query("rollback").catch(() => {});
    throw e;
  } finally {
    if (!releasing) c.release();
  }
}

export interface BatchResult {
  /** Robots whose new documents were stored. */
  stored: string[];
  /** Robots changed while their documents were signed: still dirty, signed again later. */
  raced: string[];
}

/** A batch read and its teams' online keys opened: signing it needs no query. */
interface PreparedBatch {
  rows: Prepared[];
  keys: Map<string, SigningKey>;
}

/** Reads a batch (one statement; a team without a director gets one first). */
async function prepareBatch(c: pg.ClientBase, box: SecretBox, robotIds: string[]): Promise<PreparedBatch> {
  const prepare = async () => (await c.query<Prepared>(PREPARE, [robotIds, false])).rows;
  const rows = (await withDirectors(c, box, await prepare(), prepare)).filter((r) => r.dirty || !r.fresh);
  const keys = new Map<string, SigningKey>();
  for (const r of rows) {
    const id = r.online_key_id as string;
    if (!keys.has(id)) keys.set(id, await onlineKey(c, box, r.team_id, id));
  }
  return { rows, keys };
}

/** One robot of a prepared batch, signed with its team's online key. */
const signRow = (b: PreparedBatch, r: Prepared): Signed => sign(b.keys.get(r.online_key_id as string) as SigningKey, r);
const signBatch = (b: PreparedBatch): Signed[] => b.rows.map((r) => signRow(b, r));

async function storeBatch(c: pg.ClientBase, rows: Prepared[], items: Signed[]): Promise<BatchResult> {
  const done = items.length ? await store(c, items) : new Set<string>();
  return { stored: [...done], raced: rows.map((r) => r.robot_id).filter((id) => !done.has(id)) };
}

/**
 * Regenerates a batch of robots (the sweep's unit). `beforeStore` is a test hook: it runs after
 * signing and before storing, where a concurrent change would race.
 */
export async function regenerateBatch(
  c: pg.ClientBase,
  box: SecretBox,
  robotIds: string[],
  beforeStore?: () => Promise<void>,
): Promise<BatchResult> {
  const batch = await prepareBatch(c, box, robotIds);
  // No lock is held while signing.
  const items = signBatch(batch);
  await beforeStore?.();
  return storeBatch(c, batch.rows, items);
}

/** Robots signed between two yields to the event loop while a batch is signed. */
const SIGN_CHUNK = 50;

/**
 * signBatch in chunks of SIGN_CHUNK, yielding to the event loop between them: a query queued on
 * the connection behind the one running (the next batch's read behind the previous batch's store)
 * is sent as soon as the connection is free, not only when the whole batch is signed.
 */
async function signBatchYielding(b: PreparedBatch): Promise<Signed[]> {
  const out: Signed[] = [];
  for (let i = 0; i < b.rows.length; i += SIGN_CHUNK) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    for (const r of b.rows.slice(i, i + SIGN_CHUNK)) out.push(signRow(b, r));
  }
  return out;
}

/**
 * The sweep: regenerateBatch over consecutive batches, pipelined — while a batch is signed, the
 * previous batch's store and then the next batch's preparation run on the connection (one query at
 * a time, in that order), so the database works while this process signs. Each store is its own
 * statement, issued only after the store before it returned and the next batch's preparation
 * finished. A failed batch goes to `onError` and the others go on.
 */
export async function regenerateInBatches(
  c: pg.ClientBase,
  box: SecretBox,
  robotIds: string[],
  batchSize: number,
  onError: (batch: string[], e: unknown) => Promise<void>,
): Promise<BatchResult> {
  const batches: string[][] = [];
  for (let i = 0; i < robotIds.length; i += batchSize) batches.push(robotIds.slice(i, i + batchSize));
  const out: BatchResult = { stored: [], raced: [] };
  const prepareAt = (i: number) => {
    if (i >= batches.length) return null;
    const p = prepareBatch(c, box, batches[i]);
    p.catch(() => {}); // awaited below
    return p;
  };
  const storeAt = async (i: number, rows: Prepared[], items: Signed[]) => {
    try {
      const r = await storeBatch(c, rows, items);
      out.stored.push(...r.stored);
      out.raced.push(...r.raced);
    } catch (e) {
      await onError(batches[i], e);
    }
  };
  let next = prepareAt(0);
  let storing: Promise<void> = Promise.resolve(); // the previous batch's store
  for (let i = 0; i < batches.length; i++) {
    let batch: PreparedBatch | null = null;
    try {
      batch = await next;
    } catch (e) {
      await onError(batches[i], e);
    }
    next = prepareAt(i + 1); // queued behind the previous store; both run while this batch is signed
    if (!batch) continue;
    let items: Signed[] | null = null;
    let failure: unknown = null;
    try {
      items = await signBatchYielding(batch);
    } catch (e) {
      failure = e;
    }
    await next?.catch(() => {}); // `next` keeps its outcome
    await storing; // the connection is free again
    if (failure !== null) await onError(batches[i], failure);
    else storing = storeAt(i, batch.rows, items as Signed[]);
  }
  await storing;
  return out;
}
