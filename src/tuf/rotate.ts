// Root rotation: root N+1 signed by a threshold of root N's keys and of its own keys, from key
// files the operator holds. With rotateOnlineKey, root N+1 also names a new online key (sealed
// in gk_private.tuf_online_keys, the old one kept as `previous` until root N+1 is uploaded) and
// every online role is re-signed. The new root is uploaded as (N+1).root.json only after a
// timestamp signed under it (src/tuf/publish.ts uploadPending), so the rotation marks the
// timestamp dirty and the caller publishes.
import { Metadata, MetadataKind } from "@tufjs/models";
import { UserError } from "../lib/errors.ts";
import { transaction, type WithClient } from "./db.ts";
import type { SecretBox } from "../lib/secrets.ts";
import { generateKey, publicKeyOf, readKeyFile, type SigningKey } from "./keys.ts";
import { sealOnlineKey } from "./online-key.ts";
import { MAX_ROOT_DAYS } from "./init.ts";
import { rootSigned, signDocument } from "./metadata.ts";

export interface RotateOptions {
  team: string;
  oldKeyFiles: string[];
  newKeyFiles: string[];
  /** Threshold of the new root (default: the current one, capped at the number of new keys). */
  threshold?: number;
  expiresDays?: number;
  /** Replace the online key (targets, bins, snapshot, timestamp): e.g. when it may be compromised. */
  rotateOnlineKey?: boolean;
  /** Seals the new online key (required with rotateOnlineKey). */
  box?: SecretBox;
}

export async function rotateRoot(
  withClient: WithClient,
  o: RotateOptions,
): Promise<{ teamId: string; version: number; onlineKeyId: string }> {
  if (o.rotateOnlineKey && !o.box) throw new Error("rotating the online key needs the SecretBox that seals it");
  const oldKeys = o.oldKeyFiles.map(readKeyFile);
  const newKeys = dedupe(o.newKeyFiles.map(readKeyFile));
  if (newKeys.length === 0) throw new UserError("at least one new root key is required");
  const days = o.expiresDays ?? 365;
  if (!(Number.isInteger(days) && days >= 1 && days <= MAX_ROOT_DAYS)) throw new UserError(`--expires-days must be 1..${MAX_ROOT_DAYS}`);
  return withClient((c) =>
    transaction(c, async () => {
      const repo = (
        await c.query(
          `select p.team_id, p.root_version, p.root_threshold, p.online_public_key,
                  extract(epoch from now()) * 1000 as now_ms
             from gk_public.tuf_repositories p join gk_public.teams t on t.id = p.team_id
            where t.name = $1 for no key update of p`,
          [o.team],
        )
      ).rows[0];
      if (!repo) throw new UserError(`team '${o.team}' has no TUF repository`);
      const current = (
        await c.query("select document from gk_public.tuf_metadata where team_id = $1 and role = 'root' and version = $2", [
          repo.team_id,
          repo.root_version,
        ])
      ).rows[0];
      if (!current) throw new Error(`root version ${repo.root_version} of team '${o.team}' is missing from tuf_metadata`);
      const trusted = Metadata.fromJSON(MetadataKind.Root, JSON.parse(current.document));
      const rootRole = trusted.signed.roles.root;
      const signers = dedupe(oldKeys).filter((k) => rootRole.keyIDs.includes(k.keyid));
      const strangers = oldKeys.filter((k) => !rootRole.keyIDs.includes(k.keyid));
      if (strangers.length) throw new UserError(`not a key of root v${repo.root_version}: ${strangers.map((k) => k.keyid).join(", ")}`);
      if (signers.length < rootRole.threshold) {
        throw new UserError(`root v${repo.root_version} needs ${rootRole.threshold} of its keys, got ${signers.length}`);
      }
      const threshold = o.threshold ?? Math.min(repo.root_threshold, newKeys.length);
      if (!Number.isInteger(threshold) || threshold < 1 || threshold > newKeys.length) {
        throw new UserError(`threshold must be 1..${newKeys.length}`);
      }
      const version = repo.root_version + 1;
      const expires = new Date(Number(repo.now_ms) + days * 86_400_000);
      const online = o.rotateOnlineKey ? generateKey() : publicKeyOf(repo.online_public_key);
      const document = signDocument(rootSigned({ version, expires, rootKeys: newKeys, threshold, online }), [...signers, ...newKeys]);
      // What a client will check: signed by the old root's threshold and by the new one's.
      const next = Metadata.fromJSON(MetadataKind.Root, JSON.parse(document));
      trusted.verifyDelegate("root", next);
      next.verifyDelegate("root", next);

      await c.query("insert into gk_public.tuf_metadata (team_id, role, version, expires, document) values ($1, 'root', $2, $3, $4)", [
        repo.team_id,
        version,
        expires,
        document,
      ]);
      await c.query("update gk_public.tuf_repositories set root_version = $2, root_threshold = $3, root_expires = $4 where team_id = $1", [
        repo.team_id,
        version,
        threshold,
        expires,
      ]);
      if (o.rotateOnlineKey) {
        const key = online as SigningKey;
        await c.query("update gk_public.tuf_repositories set online_key_id = $2, online_public_key = $3 where team_id = $1", [
          repo.team_id,
          key.keyid,
          key.key.keyval.public,
        ]);
        // The old key keeps co-signing until root N+1 is out (migration 0112).
        await c.query(
          `update gk_private.tuf_online_keys
              set previous_key_id = key_id, previous_sealed_private_key = sealed_private_key, key_id = $2, sealed_private_key = $3
            where team_id = $1`,
          [repo.team_id, key.keyid, sealOnlineKey(o.box!, repo.team_id, key)],
        );
      }
      // Every online role with a new key, else the timestamp alone: root N+1 is uploaded after
      // a timestamp signed under it. Role rows locked in (team_id, role) order (sql/400_tuf.sql).
      await c.query(
        `with locked as (
           select role from gk_public.tuf_roles where team_id = $1 and ($2 or role = 'timestamp') order by role for update)
         update gk_public.tuf_roles r
            set dirty = true, dirty_since = coalesce(r.dirty_since, now()), dirty_generation = r.dirty_generation + 1
           from locked l where r.team_id = $1 and r.role = l.role`,
        [repo.team_id, Boolean(o.rotateOnlineKey)],
      );
      await c.query("select gk_private.tuf_schedule_publish(array[$1::uuid])", [repo.team_id]);
      return { teamId: repo.team_id as string, version, onlineKeyId: online.keyid };
    }),
  );
}

function dedupe(keys: SigningKey[]): SigningKey[] {
  const seen = new Map<string, SigningKey>();
  for (const k of keys) seen.set(k.keyid, k);
  return [...seen.values()];
}
