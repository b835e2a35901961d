// `tuf init`: bootstrap a team's repository. Root keys are generated here and their private
// halves written to files for the operator; only public keys reach the database. The online
// key is sealed with SecretBox. Root v1 is signed and stored, every online role is created
// dirty, and a publish is scheduled (the caller may also publish at once).
import path from "node:path";
import { UserError } from "../lib/errors.ts";
import type { SecretBox } from "../lib/secrets.ts";
import { bitLengthFor } from "./bins.ts";
import { transaction, type WithClient } from "./db.ts";
import { generateKey, writeKeyFile, type SigningKey } from "./keys.ts";
import { rootSigned, signDocument } from "./metadata.ts";
import { sealOnlineKey } from "./online-key.ts";

/** Root lifetimes, like the online roles' (migration 0111): at most 10 years. */
export const MAX_ROOT_DAYS = 3660;

export interface Lifetimes {
  targets?: string;
  bins?: string;
  snapshot?: string;
  timestamp?: string;
  /** Re-sign a role when it expires within this window. */
  resignWindow?: string;
  /** Throttle between a target change and its publish. */
  publishDelay?: string;
}

export interface InitOptions {
  team: string;
  keysDir: string;
  keys?: number;
  threshold?: number;
  bins?: number;
  rootExpiresDays?: number;
  lifetimes?: Lifetimes;
}

export interface InitResult {
  teamId: string;
  keyFiles: string[];
  rootKeyIds: string[];
  onlineKeyId: string;
  bins: number;
}

export async function initRepository(withClient: WithClient, box: SecretBox, o: InitOptions): Promise<InitResult> {
  const nKeys = o.keys ?? 3;
  const threshold = o.threshold ?? Math.min(2, nKeys);
  if (!Number.isInteger(nKeys) || nKeys < 1 || nKeys > 32) throw new UserError("--keys must be 1..32");
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > nKeys) throw new UserError(`--threshold must be 1..${nKeys}`);
  const bins = o.bins ?? 256;
  const bitLength = bitLengthFor(bins);
  const rootDays = o.rootExpiresDays ?? 365;
  if (!(rootDays > 0 && rootDays <= MAX_ROOT_DAYS)) throw new UserError(`root expiry must be 1..${MAX_ROOT_DAYS} days`);

  return withClient(async (c) => {
    const team = (await c.query("select id from gk_public.teams where name = $1", [o.team])).rows[0];
    if (!team) throw new UserError(`no team named '${o.team}'`);
    const teamId: string = team.id;
    if ((await c.query("select 1 from gk_public.tuf_repositories where team_id = $1", [teamId])).rowCount) {
      throw new UserError(`team '${o.team}' already has a TUF repository`);
    }
    const rootKeys: SigningKey[] = Array.from({ length: nKeys }, generateKey);
    const online = generateKey();
    const now = (await c.query("select extract(epoch from now()) * 1000 as ms")).rows[0].ms;
    const rootExpires = new Date(Number(now) + rootDays * 86_400_000);
    const root = signDocument(rootSigned({ version: 1, expires: rootExpires, rootKeys, threshold, online }), rootKeys);

    // Key files before the database: a repository must never exist whose keys were not handed out.
    const keyFiles = rootKeys.map((k, i) => writeKeyFile(o.keysDir, `${o.team}.root-${i + 1}.${k.keyid.slice(0, 12)}.json`, k));
    const lt = o.lifetimes ?? {};
    try {
      await transaction(c, async () => {
        await c.query(
          `insert into gk_public.tuf_repositories
             (team_id, bit_length, root_threshold, root_expires, online_key_id, online_public_key,
              targets_lifetime, bins_lifetime, snapshot_lifetime, timestamp_lifetime, resign_window, publish_delay)
           values ($1, $2, $3, $4, $5, $6,
                   coalesce($7::interval, '365 days'), coalesce($8::interval, '30 days'), coalesce($9::interval, '7 days'),
                   coalesce($10::interval, '1 day'), coalesce($11::interval, '6 hours'), coalesce($12::interval, '1 second'))`,
          [
            teamId,
            bitLength,
            threshold,
            rootExpires,
            online.keyid,
            online.key.keyval.public,
            lt.targets ?? null,
            lt.bins ?? null,
            lt.snapshot ?? null,
            lt.timestamp ?? null,
            lt.resignWindow ?? null,
            lt.publishDelay ?? null,
          ],
        );
        await c.query("insert into gk_private.tuf_online_keys (team_id, key_id, sealed_private_key) values ($1, $2, $3)", [
          teamId,
          online.keyid,
          sealOnlineKey(box, teamId, online),
        ]);
        await c.query(
          `insert into gk_public.tuf_roles (team_id, role, bin)
           select $1::uuid, r, null from unnest(array['targets', 'snapshot', 'timestamp']) r
           union all
           select $1::uuid, 'bins-' || lpad(to_hex(b), length(to_hex((1 << $2) - 1)), '0'), b from generate_series(0, (1 << $2) - 1) b`,
          [teamId, bitLength],
        );
        await c.query("insert into gk_public.tuf_metadata (team_id, role, version, expires, document) values ($1, 'root', 1, $2, $3)", [
          teamId,
          rootExpires,
          root,
        ]);
        await c.query("insert into gk_private.tuf_upload_cursors (team_id) values ($1)", [teamId]);
        await c.query("select gk_private.tuf_schedule_publish(array[$1::uuid])", [teamId]);
      });
    } catch (e) {
      const { message, code } = e as Error & { code?: string };
      // 22023: the lifetime rules (sql/400_tuf.sql); 22007/22008/22015: not an interval, out of range.
      if (code === "22023" || code === "22007" || code === "22008" || code === "22015" || code === "23514") {
        throw new UserError(`invalid lifetimes: ${message}`);
      }
      throw e;
    }
    return {
      teamId,
      keyFiles: keyFiles.map((f) => path.resolve(f)),
      rootKeyIds: rootKeys.map((k) => k.keyid),
      onlineKeyId: online.keyid,
      bins,
    };
  });
}
