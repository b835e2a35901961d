// A team's Uptane director: its own root key and online key (not the image repository's), both
// sealed under the master key as src/tuf/online-key.ts does, bound to the team and the key id so
// a sealed key cannot be moved. Created lazily at the first regeneration of one of the team's
// robots; a root rotation replaces both keys and marks every robot of the team dirty, because
// its metadata must be signed by the new online key.
import type pg from "pg";
import type { SecretBox } from "../lib/secrets.ts";
import { generateKey, privatePem, type SigningKey, signingKeyFromPem } from "../tuf/keys.ts";
import { rootSigned, signDocument } from "../tuf/metadata.ts";
import { transaction } from "../db/pool.ts";

export interface DirectorKeys {
  teamId: string;
  root: SigningKey;
  online: SigningKey;
  rootVersion: number;
  /** Lifetimes in seconds. */
  lifetimes: { targets: number; snapshot: number; timestamp: number; root: number };
}

function keyContext(teamId: string, role: string, keyid: string): string {
  return `director-key:${teamId}:${role}:${keyid}`;
}

/** The director root: Uptane's director serves unversioned snapshot and targets (consistent_snapshot false). */
export function directorRootDocument(
  o: { version: number; expires: Date; root: SigningKey; online: SigningKey },
  signers: SigningKey[],
): string {
  const signed = {
    ...rootSigned({ version: o.version, expires: o.expires, rootKeys: [o.root], threshold: 1, online: o.online }),
    consistent_snapshot: false,
  };
  return signDocument(signed, signers);
}

async function storeKeys(c: pg.ClientBase, box: SecretBox, teamId: string, keys: { root: SigningKey; online: SigningKey }): Promise<void> {
  await c.query(
    `insert into gk_private.director_keys (team_id, key_id, role, sealed_private_key)
     values ($1, $2, 'root', $3), ($1, $4, 'online', $5)`,
    [
      teamId,
      keys.root.keyid,
      box.seal(privatePem(keys.root), keyContext(teamId, "root", keys.root.keyid)),
      keys.online.keyid,
      box.seal(privatePem(keys.online), keyContext(teamId, "online", keys.online.keyid)),
    ],
  );
}

/**
 * Creates the team's director (keys, root v1) unless it exists. One statement, so it is atomic
 * inside or outside the caller's transaction; concurrent creators: the first wins, the others
 * insert nothing.
 */
export async function ensureDirector(c: pg.ClientBase, box: SecretBox, teamId: string): Promise<void> {
  if ((await c.query("select 1 from gk_public.director_repositories where team_id = $1", [teamId])).rowCount) return;
  const root = generateKey();
  const online = generateKey();
  const now = Number((await c.query("select extract(epoch from now()) * 1000 as ms")).rows[0].ms);
  const expires = new Date(Math.floor((now + 365 * 86_400_000) / 1000) * 1000);
  await c.query(
    `with repo as (
       insert into gk_public.director_repositories (team_id, root_expires, root_key_id, online_key_id)
       values ($1, $2, $3, $4) on conflict (team_id) do nothing returning team_id
     ), keys as (
       insert into gk_private.director_keys (team_id, key_id, role, sealed_private_key)
       select repo.team_id, k.key_id, k.role, k.sealed from repo,
              (values ($3, 'root', $5), ($4, 'online', $6)) as k (key_id, role, sealed)
     )
     insert into gk_public.director_roots (team_id, version, expires, document) select repo.team_id, 1, $2, $7 from repo`,
    [
      teamId,
      expires,
      root.keyid,
      online.keyid,
      box.seal(privatePem(root), keyContext(teamId, "root", root.keyid)),
      box.seal(privatePem(online), keyContext(teamId, "online", online.keyid)),
      directorRootDocument({ version: 1, expires, root, online }, [root]),
    ],
  );
}

// Opened online keys by team and key id: a key id names one key for good (a rotation brings a
// new id), so an entry never goes stale; bounded so a huge fleet of teams cannot grow it.
const openedOnlineKeys = new Map<string, SigningKey>();
const MAX_OPENED_KEYS = 10_000;

/** A robot's certificate as the robot API verified it (src/peers/robot-api.ts RobotIdentity). */
export interface PresentedCertificate {
  serial: string;
  /** DER. */
  certificate: Buffer;
}

/**
 * The team's online key with this id, opened once per process. With `presented` (the robot API,
 * whose gk_peer connections cannot read gk_private.director_keys), read through
 * gk_private.director_robot_online_key (sql/930_peer_role.sql): only the key of that robot's team.
 */
export async function onlineKey(
  c: pg.ClientBase,
  box: SecretBox,
  teamId: string,
  keyId: string,
  presented?: PresentedCertificate,
): Promise<SigningKey> {
  const cacheKey = `${teamId}:${keyId}`;
  const hit = openedOnlineKeys.get(cacheKey);
  if (hit) return hit;
  const { rows } = presented
    ? await c.query("select gk_private.director_robot_online_key($1, $2, $3) as sealed_private_key", [
        presented.serial,
        presented.certificate,
        keyId,
      ])
    : await c.query("select sealed_private_key from gk_private.director_keys where team_id = $1 and key_id = $2 and role = 'online'", [
        teamId,
        keyId,
      ]);
  if (!rows[0]?.sealed_private_key)
    throw new Error(`team ${teamId}: the director has no online key ${keyId}${presented ? " for this robot" : ""}`);
  const key = signingKeyFromPem(box.open(rows[0].sealed_private_key, keyContext(teamId, "online", keyId)).toString());
  if (key.keyid !== keyId) throw new Error(`team ${teamId}: sealed director online key does not match its key id`);
  if (openedOnlineKeys.size >= MAX_OPENED_KEYS) openedOnlineKeys.clear();
  openedOnlineKeys.set(cacheKey, key);
  return key;
}

/** The team's current keys and lifetimes (the director must exist). */
export async function loadDirectorKeys(c: pg.ClientBase, box: SecretBox, teamId: string): Promise<DirectorKeys> {
  const { rows } = await c.query(
    `select p.root_version, p.root_key_id, p.online_key_id, k.key_id, k.role, k.sealed_private_key,
            extract(epoch from p.targets_lifetime)::float8 as targets_s, extract(epoch from p.snapshot_lifetime)::float8 as snapshot_s,
            extract(epoch from p.timestamp_lifetime)::float8 as timestamp_s, extract(epoch from p.root_lifetime)::float8 as root_s
       from gk_public.director_repositories p
       join gk_private.director_keys k on k.team_id = p.team_id and k.key_id in (p.root_key_id, p.online_key_id)
      where p.team_id = $1`,
    [teamId],
  );
  const open = (role: "root" | "online") => {
    const row = rows.find((r) => r.role === role && r.key_id === (role === "root" ? r.root_key_id : r.online_key_id));
    if (!row) throw new Error(`team ${teamId}: the director has no ${role} key`);
    const key = signingKeyFromPem(box.open(row.sealed_private_key, keyContext(teamId, role, row.key_id)).toString());
    if (key.keyid !== row.key_id) throw new Error(`team ${teamId}: sealed director ${role} key does not match its key id`);
    return key;
  };
  const r = rows[0];
  return {
    teamId,
    root: open("root"),
    online: open("online"),
    rootVersion: r.root_version,
    lifetimes: { targets: r.targets_s, snapshot: r.snapshot_s, timestamp: r.timestamp_s, root: r.root_s },
  };
}

/**
 * Root N+1 of the team's director, signed by root N's key and its own. With `newKeys` (a
 * rotation) the root and online keys are replaced and every robot of the team is marked dirty;
 * without (renewal before expiry) the keys stay and the robots' metadata is untouched.
 */
export async function signNextRoot(c: pg.ClientBase, box: SecretBox, teamId: string, opts: { newKeys: boolean }): Promise<number> {
  return transaction(c, async () => {
    const lock = await c.query("select root_version from gk_public.director_repositories where team_id = $1 for no key update", [teamId]);
    if (!lock.rows[0]) throw new Error(`team ${teamId} has no director`);
    const current = await loadDirectorKeys(c, box, teamId);
    const next = opts.newKeys ? { root: generateKey(), online: generateKey() } : { root: current.root, online: current.online };
    const version = current.rootVersion + 1;
    const expires = new Date(
      Number((await c.query("select extract(epoch from now()) * 1000 as ms")).rows[0].ms) + current.lifetimes.root * 1000,
    );
    const document = directorRootDocument({ version, expires, ...next }, [current.root, next.root]);
    await c.query("insert into gk_public.director_roots (team_id, version, expires, document) values ($1, $2, $3, $4)", [
      teamId,
      version,
      expires,
      document,
    ]);
    if (opts.newKeys) {
      await storeKeys(c, box, teamId, next);
      await c.query("delete from gk_private.director_keys where team_id = $1 and key_id in ($2, $3)", [
        teamId,
        current.root.keyid,
        current.online.keyid,
      ]);
    }
    await c.query(
      "update gk_public.director_repositories set root_version = $2, root_expires = $3, root_key_id = $4, online_key_id = $5 where team_id = $1",
      [teamId, version, expires, next.root.keyid, next.online.keyid],
    );
    if (opts.newKeys) await c.query("select gk_private.director_mark_team_dirty($1)", [teamId]);
    return version;
  });
}
