// Publishing a team's repository, in two steps:
//  1. signDirty: one transaction holding the repository's row lock. Re-signs only the dirty
//     roles (a dirty bin from its own rows, found by an index range scan), then snapshot, then
//     timestamp; stores every signed document with its version; clears the dirty flags of the
//     roles no writer touched meanwhile.
//  2. uploadPending: no repository lock. Writes stored-but-not-uploaded documents to the blob
//     store (versioned files first), then timestamp.json last under the upload cursor's row
//     lock, which only ever moves forward. Re-running it repairs a crash between 1 and 2: the
//     stored bytes are uploaded again, nothing is signed twice under one version.
import type pg from "pg";
import type { BlobStore } from "../adapters/blobs/types.ts";
import { mapLimit } from "../lib/map-limit.ts";
import type { SecretBox } from "../lib/secrets.ts";
import { transaction, type WithClient } from "./db.ts";
import { metadataFile, metadataKey } from "./layout.ts";
import {
  binCanonical,
  signCanonical,
  signCanonicalMany,
  signDocument,
  snapshotCanonical,
  targetsSigned,
  timestampSigned,
} from "./metadata.ts";
import { loadSigningKeys } from "./online-key.ts";
import { publicKeyOf } from "./keys.ts";

export interface SignResult {
  bins: number;
  targets: boolean;
  snapshotVersion: number | null;
  timestampVersion: number | null;
  documents: number;
}

interface RoleRow {
  role: string;
  bin: number | null;
  version: number;
  dirty: boolean;
  /** dirty_generation as read (bigint as text). */
  generation: string;
}

interface NewDoc {
  role: string;
  version: number;
  expires: Date;
  document: string;
  generation: string;
}

export async function signDirty(withClient: WithClient, box: SecretBox, teamId: string): Promise<SignResult> {
  return withClient((c) =>
    transaction(c, async () => {
      // FOR NO KEY UPDATE: publishers serialize on it, while target writers' FK checks (KEY
      // SHARE on this row) go on unblocked during a publish.
      const repo = (
        await c.query(
          `select bit_length, online_public_key,
                  extract(epoch from targets_lifetime) as targets_s, extract(epoch from bins_lifetime) as bins_s,
                  extract(epoch from snapshot_lifetime) as snapshot_s, extract(epoch from timestamp_lifetime) as timestamp_s,
                  extract(epoch from statement_timestamp()) * 1000 as now_ms
             from gk_public.tuf_repositories where team_id = $1 for no key update`,
          [teamId],
        )
      ).rows[0];
      if (!repo) throw new Error(`team ${teamId} has no TUF repository`);
      // No role lock while signing: writers keep dirtying bins meanwhile (see updateRoles).
      const roles = (
        await c.query<RoleRow>(
          `select role, bin, version, dirty, dirty_generation::text as generation from gk_public.tuf_roles
            where team_id = $1 and (dirty or bin is null)
            order by role`,
          [teamId],
        )
      ).rows;
      const dirty = roles.filter((r) => r.dirty);
      const result: SignResult = { bins: 0, targets: false, snapshotVersion: null, timestampVersion: null, documents: 0 };
      if (dirty.length === 0) return result;

      const keys = await loadSigningKeys(c, box, teamId);
      const now = Number(repo.now_ms);
      const expiresIn = (seconds: string) => new Date(now + Number(seconds) * 1000);
      const bitLength = Number(repo.bit_length);
      const byRole = new Map(roles.map((r) => [r.role, r]));
      const docs: NewDoc[] = [];
      const add = (role: string, version: number, expires: Date, signed: Parameters<typeof signDocument>[0] | string) =>
        docs.push({
          role,
          version,
          expires,
          document: typeof signed === "string" ? signCanonical(signed, keys) : signDocument(signed, keys),
          generation: byRole.get(role)!.generation,
        });

      const dirtyBins = dirty.filter((r) => r.bin !== null);
      // One INSERT at a time on this connection; a failure surfaces at `await storing` below.
      let storing: Promise<void> = Promise.resolve();
      let stored = 0;
      if (dirtyBins.length > 0) {
        const byBin = await fragmentsOfBins(
          c,
          teamId,
          bitLength,
          dirtyBins.map((r) => r.bin as number),
        );
        const expires = expiresIn(repo.bins_s);
        // Stored in chunks while the next ones are signed: PostgreSQL writes one chunk (on its
        // own core) while Node signs the next, instead of one after the other.
        for (let i = 0; i < dirtyBins.length; i += STORE_CHUNK) {
          const rows = dirtyBins.slice(i, i + STORE_CHUNK);
          // Signed on the threadpool: meanwhile this thread sends the previous chunk's INSERT.
          const documents = await signCanonicalMany(
            rows.map((r) => binCanonical(r.version + 1, expires, byBin.get(r.bin as number) ?? "")),
            keys,
          );
          const chunk = rows.map((r, j) => ({
            role: r.role,
            version: r.version + 1,
            expires,
            document: documents[j],
            generation: r.generation,
          }));
          docs.push(...chunk);
          storing = storing.then(() => insertDocs(c, teamId, chunk));
          storing.catch(() => {}); // handled: awaited after the loop, not an unhandled rejection meanwhile
        }
        stored = docs.length;
        result.bins = dirtyBins.length;
      }
      const targets = byRole.get("targets")!;
      if (targets.dirty) {
        const expires = expiresIn(repo.targets_s);
        add(
          "targets",
          targets.version + 1,
          expires,
          targetsSigned(targets.version + 1, expires, publicKeyOf(repo.online_public_key), bitLength),
        );
        result.targets = true;
      }
      const snapshot = byRole.get("snapshot")!;
      const timestamp = byRole.get("timestamp")!;
      const signSnapshot = docs.length > 0 || snapshot.dirty;
      // Store the signed bins/targets first: the bulk of the bytes, written before any role lock.
      await storing;
      await insertDocs(c, teamId, docs.slice(stored));
      // Now lock, in (team_id, role) order, every row about to change; writers wait only for
      // the rest of this transaction, not for the signing above.
      await c.query("select 1 from gk_public.tuf_roles where team_id = $1 and role = any($2::text[]) order by role for update", [
        teamId,
        [...docs.map((d) => d.role), ...(signSnapshot ? ["snapshot"] : []), "timestamp"],
      ]);
      // Record the new versions before snapshot lists every role's version.
      await updateRoles(c, teamId, docs);

      let snapshotVersion = snapshot.version;
      if (signSnapshot) {
        snapshotVersion = snapshot.version + 1;
        const listed = (
          await c.query<{ role: string; version: number }>(
            `select role, version from gk_public.tuf_roles
              where team_id = $1 and role not in ('snapshot', 'timestamp') order by role`,
            [teamId],
          )
        ).rows;
        const expires = expiresIn(repo.snapshot_s);
        add("snapshot", snapshotVersion, expires, snapshotCanonical(snapshotVersion, expires, listed));
        result.snapshotVersion = snapshotVersion;
      }
      if (result.snapshotVersion !== null || timestamp.dirty) {
        const expires = expiresIn(repo.timestamp_s);
        add("timestamp", timestamp.version + 1, expires, timestampSigned(timestamp.version + 1, expires, snapshotVersion));
        result.timestampVersion = timestamp.version + 1;
      }
      const last = docs.filter((d) => d.role === "snapshot" || d.role === "timestamp");
      await updateRoles(c, teamId, last);
      await insertDocs(c, teamId, last);
      await c.query("update gk_public.tuf_repositories set last_sign_duration = clock_timestamp() - now() where team_id = $1", [teamId]);
      result.documents = docs.length;
      return result;
    }),
  );
}

/**
 * The targets of the given bins only, as each bin's canonical fragments joined in path order
 * (byte order = code point order; see migration 0113). Bins are contiguous ranges of
 * path_hash32, so adjacent dirty bins are merged into runs and each run is one index range scan
 * (UNION ALL of literal ranges: the plan cannot degrade into a nested loop when statistics lag
 * behind a bulk load). Past MAX_RUNS the closest runs are merged and clean bins in the gaps are
 * dropped.
 */
async function fragmentsOfBins(c: pg.ClientBase, teamId: string, bitLength: number, bins: number[]): Promise<Map<number, string>> {
  const shift = 32 - bitLength;
  const wanted = new Set(bins);
  const runs = binRuns(bins, MAX_RUNS).map(([from, to]) => [BigInt(from) << BigInt(shift), BigInt(to + 1) << BigInt(shift)]);
  const ranges = runs
    .map(
      ([lo, hi]) =>
        `select path, fragment, path_hash32 from gk_public.tuf_targets
          where team_id = $1 and path_hash32 >= ${lo} and path_hash32 < ${hi}`,
    )
    .join("\nunion all\n");
  const { rows } = await c.query<{ bin: number; fragments: string }>(
    `select (path_hash32 >> ${shift})::int as bin, string_agg(fragment, ',' order by path collate "C") as fragments
       from (${ranges}) t group by 1`,
    [teamId],
  );
  const byBin = new Map<number, string>();
  for (const r of rows) if (wanted.has(r.bin)) byBin.set(r.bin, r.fragments);
  return byBin;
}

const MAX_RUNS = 64;
/** Bin documents per INSERT while signing (see signDirty). */
const STORE_CHUNK = 1024;

/** Sorted bins → [from, to] runs of adjacent bins, merged across the smallest gaps down to max. */
export function binRuns(bins: number[], max: number): [number, number][] {
  const sorted = [...new Set(bins)].sort((a, b) => a - b);
  let runs: [number, number][] = [];
  for (const b of sorted) {
    const last = runs[runs.length - 1];
    if (last && last[1] + 1 === b) last[1] = b;
    else runs.push([b, b]);
  }
  if (runs.length > max) {
    // Keep the (max - 1) widest gaps; close every other one.
    const gaps = runs.slice(1).map((r, i) => ({ i, size: r[0] - runs[i][1] }));
    const keep = new Set(
      gaps
        .sort((a, b) => b.size - a.size)
        .slice(0, max - 1)
        .map((g) => g.i),
    );
    const merged: [number, number][] = [[...runs[0]]];
    for (let i = 1; i < runs.length; i++) {
      if (keep.has(i - 1)) merged.push([...runs[i]]);
      else merged[merged.length - 1][1] = runs[i][1];
    }
    runs = merged;
  }
  return runs;
}

// Documents travel as one JSON array: JSON.stringify is native, where pg's text[] parameters
// escape every quote of every document in JavaScript (the largest main-thread cost after
// signing in a profile of 16,384 distinct bins).
async function insertDocs(c: pg.ClientBase, teamId: string, docs: NewDoc[]): Promise<void> {
  if (docs.length === 0) return;
  await c.query(
    `insert into gk_public.tuf_metadata (team_id, role, version, expires, document)
     select $1, d.role, d.version, d.expires, d.document
       from json_to_recordset($2::json) as d (role text, version int, expires timestamptz, document text)`,
    [teamId, JSON.stringify(docs.map(({ role, version, expires, document }) => ({ role, version, expires, document })))],
  );
}

/**
 * New versions and expiries. A role stays dirty when a writer changed it after we read it
 * (its generation moved): what we signed lacks that change, the next publish adds it.
 */
async function updateRoles(c: pg.ClientBase, teamId: string, docs: NewDoc[]): Promise<void> {
  if (docs.length === 0) return;
  await c.query(
    `update gk_public.tuf_roles r
        set version = u.version, expires = u.expires,
            dirty = r.dirty_generation <> u.generation,
            dirty_since = case when r.dirty_generation <> u.generation then r.dirty_since end
       from json_to_recordset($2::json) as u (role text, version int, expires timestamptz, generation bigint)
      where r.team_id = $1 and r.role = u.role`,
    [teamId, JSON.stringify(docs.map(({ role, version, expires, generation }) => ({ role, version, expires, generation })))],
  );
}

export interface UploadResult {
  uploaded: number;
  /** The version now in timestamp.json (null when this call did not change it). */
  timestampVersion: number | null;
}

const UPLOAD_PAGE = 2000;

export async function uploadPending(withClient: WithClient, blobs: BlobStore, teamId: string, concurrency = 16): Promise<UploadResult> {
  return withClient(async (c) => {
    let uploaded = await uploadVersioned(c, blobs, teamId, concurrency);
    const timestampVersion = await transaction(c, async () => {
      await c.query("insert into gk_private.tuf_upload_cursors (team_id) values ($1) on conflict do nothing", [teamId]);
      const cursor = (await c.query("select timestamp_version from gk_private.tuf_upload_cursors where team_id = $1 for update", [teamId]))
        .rows[0];
      // The newest timestamp first: everything it leads to was committed with it or before,
      // so uploading whatever is still pending after this read covers it.
      const latest = (
        await c.query(
          `select version, document from gk_public.tuf_metadata
            where team_id = $1 and role = 'timestamp' order by version desc limit 1`,
          [teamId],
        )
      ).rows[0];
      uploaded += await uploadVersioned(c, blobs, teamId, concurrency);
      if (!latest || latest.version <= cursor.timestamp_version) return null;
      await blobs.put(metadataKey(teamId, "timestamp.json"), latest.document, { contentType: "application/json" });
      await c.query("update gk_private.tuf_upload_cursors set timestamp_version = $2, uploaded_at = now() where team_id = $1", [
        teamId,
        latest.version,
      ]);
      const marked = await c.query(
        `update gk_public.tuf_metadata set uploaded_at = now()
          where team_id = $1 and role = 'timestamp' and version <= $2 and uploaded_at is null`,
        [teamId, latest.version],
      );
      uploaded += marked.rowCount ?? 0;
      return latest.version as number;
    });
    uploaded += await uploadVersioned(c, blobs, teamId, concurrency, true);
    // Root N+1 is out: the previous online key of a rotation signs nothing more.
    await c.query(
      `update gk_private.tuf_online_keys set previous_key_id = null, previous_sealed_private_key = null
        where team_id = $1 and previous_key_id is not null
          and not exists (select 1 from gk_public.tuf_metadata m where m.team_id = $1 and m.role = 'root' and m.uploaded_at is null)`,
      [teamId],
    );
    return { uploaded, timestampVersion };
  });
}

/**
 * Uploads pending versioned documents: everything but roots, or (roots = true) the roots older
 * than the published timestamp. A root goes out only after a timestamp signed under it (its
 * online key may be new): a client that fetches root N+1 must find a timestamp it accepts.
 */
async function uploadVersioned(c: pg.ClientBase, blobs: BlobStore, teamId: string, concurrency: number, roots = false): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await c.query(
      roots
        ? `select m.id, m.role, m.version, m.document from gk_public.tuf_metadata m
            where m.team_id = $1 and m.uploaded_at is null and m.role = 'root'
              and m.id < (select ts.id from gk_private.tuf_upload_cursors u
                            join gk_public.tuf_metadata ts on ts.team_id = u.team_id and ts.role = 'timestamp' and ts.version = u.timestamp_version
                           where u.team_id = $1)
            order by m.id limit $2`
        : `select id, role, version, document from gk_public.tuf_metadata
            where team_id = $1 and uploaded_at is null and role not in ('timestamp', 'root')
            order by id limit $2`,
      [teamId, UPLOAD_PAGE],
    );
    if (rows.length === 0) return total;
    await mapLimit(rows, concurrency, (r) =>
      blobs.put(metadataKey(teamId, metadataFile(r.role, r.version)), r.document, { contentType: "application/json" }),
    );
    await c.query("update gk_public.tuf_metadata set uploaded_at = now() where id = any($1::bigint[]) and uploaded_at is null", [
      rows.map((r) => r.id),
    ]);
    total += rows.length;
  }
}

/** Sign what is dirty, then upload what is pending: what the tuf__publish task does. */
/** A failure is recorded on the repository row (tuf_repository_status) and rethrown, so the job retries. */
export async function publishTeam(withClient: WithClient, box: SecretBox, blobs: BlobStore, teamId: string) {
  try {
    const signed = await signDirty(withClient, box, teamId);
    const upload = await uploadPending(withClient, blobs, teamId);
    await withClient((c) => c.query("select gk_private.tuf_publish_succeeded($1)", [teamId]));
    return { ...signed, uploaded: upload.uploaded, publishedTimestampVersion: upload.timestampVersion };
  } catch (e) {
    await withClient((c) => c.query("select gk_private.tuf_publish_failed($1, $2)", [teamId, (e as Error).message ?? String(e)])).catch(
      () => {}, // the database itself may be what failed; the job's error still says why
    );
    throw e;
  }
}
