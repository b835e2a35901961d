// The online key (targets, bins, snapshot, timestamp) is stored sealed with SecretBox, bound
// to its team so a sealed key cannot be moved to another repository.
import type pg from "pg";
import { loadConfig } from "../config.ts";
import { type SecretBox, secretBoxFromEnv } from "../lib/secrets.ts";
import { signingKeyFromPem, privatePem, type SigningKey } from "./keys.ts";

export function onlineKeyContext(teamId: string): string {
  return `tuf-online-key:${teamId}`;
}

export function sealOnlineKey(box: SecretBox, teamId: string, key: SigningKey): string {
  return box.seal(privatePem(key), onlineKeyContext(teamId));
}

export async function loadOnlineKey(c: pg.ClientBase, box: SecretBox, teamId: string): Promise<SigningKey> {
  const { rows } = await c.query("select key_id, sealed_private_key from gk_private.tuf_online_keys where team_id = $1", [teamId]);
  if (!rows[0]) throw new Error(`team ${teamId} has no TUF online key`);
  const key = signingKeyFromPem(box.open(rows[0].sealed_private_key, onlineKeyContext(teamId)).toString());
  if (key.keyid !== rows[0].key_id) throw new Error(`team ${teamId}: sealed online key does not match its key id`);
  return key;
}

/**
 * The keys that sign online roles now: the current online key, and during an online-key
 * rotation (until the new root is uploaded) the previous one too, so clients on either root
 * accept the documents (migration 0112).
 */
export async function loadSigningKeys(c: pg.ClientBase, box: SecretBox, teamId: string): Promise<SigningKey[]> {
  const current = await loadOnlineKey(c, box, teamId);
  const { rows } = await c.query(
    "select previous_key_id, previous_sealed_private_key from gk_private.tuf_online_keys where team_id = $1 and previous_key_id is not null",
    [teamId],
  );
  if (!rows[0]) return [current];
  const previous = signingKeyFromPem(box.open(rows[0].previous_sealed_private_key, onlineKeyContext(teamId)).toString());
  if (previous.keyid !== rows[0].previous_key_id) throw new Error(`team ${teamId}: sealed previous online key does not match its key id`);
  return [current, previous];
}

let processBox: SecretBox | undefined;
/** The process's SecretBox (GK_MASTER_KEY or the key file under GROUNDSKEEPER_HOME). */
export function tufSecretBox(): SecretBox {
  processBox ??= secretBoxFromEnv(process.env, loadConfig().home);
  return processBox;
}
