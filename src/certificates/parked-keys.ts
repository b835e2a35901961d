// CA-generated private keys parked sealed in gk_private.certificate_private_keys, handed out once:
// each take locks the key rows, opens them, deletes them and records downloaded_at in one
// transaction, so two concurrent downloads cannot both get a key (the loser finds the row gone).
import type pg from "pg";
import { inTransaction } from "../db/pool.ts";
import type { SecretBox } from "../lib/secrets.ts";

/** AAD binding a sealed key to its certificate: a sealed key copied onto another row does not open. */
export function certificateKeyContext(certificateId: string): string {
  return `certificate-private-key:${certificateId}`;
}

export type Take<T> = { status: 200; body: T } | { status: 404 | 409 | 410; error: string };

export interface BundleCertificate {
  profile: string;
  certificate_pem: string;
  private_key_pem: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const GONE = "already downloaded, or never held by Groundskeeper (the holder sent its own key, or the certificate was revoked or expired)";

/** Opens and deletes the parked keys of `ids` (already locked by the caller) and records the download. */
async function consume(
  c: pg.PoolClient,
  box: SecretBox,
  keys: { certificate_id: string; sealed_key: string }[],
): Promise<Map<string, string>> {
  const opened = new Map(
    keys.map((k) => [k.certificate_id, box.open(k.sealed_key, certificateKeyContext(k.certificate_id)).toString("utf8")]),
  );
  const ids = [...opened.keys()];
  await c.query("delete from gk_private.certificate_private_keys where certificate_id = any($1::uuid[])", [ids]);
  await c.query("update gk_public.certificates set downloaded_at = now() where id = any($1::uuid[]) and downloaded_at is null", [ids]);
  return opened;
}

export async function takeCertificateKey(pool: pg.Pool, box: SecretBox, id: string): Promise<Take<string>> {
  if (!UUID.test(id)) return { status: 404, error: `certificate ${id} not found` };
  return inTransaction(pool, async (c) => {
    // Expired means expired now, not at the next sweep: the certificate's (or its credential's)
    // not_after decides, so a lapsed credential's keys are never handed out in between.
    const cert = await c.query<{ status: string; lapsed: boolean }>(
      `select c.status,
              (c.not_after <= now() or p.status = 'expired' or p.expires_at <= now()
               or exists (select 1 from gk_public.certificates s
                           where s.provisioning_credential_id = c.provisioning_credential_id and s.not_after <= now())) is true as lapsed
         from gk_public.certificates c left join gk_public.provisioning_credentials p on p.id = c.provisioning_credential_id
        where c.id = $1`,
      [id],
    );
    if (cert.rowCount === 0) return { status: 404, error: `certificate ${id} not found` };
    if (cert.rows[0]!.lapsed) return { status: 410, error: `certificate ${id} has expired: its private key was destroyed` };
    const { rows } = await c.query<{ certificate_id: string; sealed_key: string }>(
      "select certificate_id::text, sealed_key from gk_private.certificate_private_keys where certificate_id = $1 for update",
      [id],
    );
    if (rows.length === 0) return { status: 410, error: `the private key of certificate ${id} was ${GONE}` };
    const keys = await consume(c, box, rows);
    return { status: 200, body: keys.get(id)! };
  });
}

export interface CredentialBundle {
  credential_id: string;
  certificates: BundleCertificate[];
  ca_certificate_pem: string;
}

export async function takeCredentialBundle(
  pool: pg.Pool,
  box: SecretBox,
  id: string,
  caCertificatePem: string,
): Promise<Take<CredentialBundle>> {
  if (!UUID.test(id)) return { status: 404, error: `provisioning credential ${id} not found` };
  return inTransaction(pool, async (c) => {
    // The credential row lock serialises bundle downloads; the key row locks, single-key downloads.
    const cred = await c.query<{ status: string }>(
      "select case when status = 'issued' and expires_at <= now() then 'expired' else status end as status from gk_public.provisioning_credentials where id = $1 for update",
      [id],
    );
    if (cred.rowCount === 0) return { status: 404, error: `provisioning credential ${id} not found` };
    const status = cred.rows[0].status;
    if (status === "issuing") return { status: 409, error: `provisioning credential ${id} is not issued yet: try again shortly` };
    if (status !== "issued") return { status: 410, error: `provisioning credential ${id} is ${status}: its private keys were destroyed` };
    const certs = await c.query<{ id: string; profile: string; pem: string | null }>(
      "select id::text, profile, pem from gk_public.certificates where provisioning_credential_id = $1 order by profile",
      [id],
    );
    const pending = certs.rows.filter((r) => r.pem == null);
    if (pending.length > 0) {
      return {
        status: 409,
        error: `the CA has not handed over certificate ${pending[0].id} yet: download it (downloadCertificate), then try again`,
      };
    }
    const { rows: keys } = await c.query<{ certificate_id: string; sealed_key: string }>(
      "select certificate_id::text, sealed_key from gk_private.certificate_private_keys where certificate_id = any($1::uuid[]) for update",
      [certs.rows.map((r) => r.id)],
    );
    const missing = certs.rows.filter((r) => !keys.some((k) => k.certificate_id === r.id));
    // All or nothing: a partial bundle would consume keys the operator cannot use without the rest.
    if (missing.length > 0)
      return { status: 410, error: `the private key of the ${missing[0].profile} certificate of credential ${id} was ${GONE}` };
    const opened = await consume(c, box, keys);
    return {
      status: 200,
      body: {
        credential_id: id,
        certificates: certs.rows.map((r) => ({ profile: r.profile, certificate_pem: r.pem!, private_key_pem: opened.get(r.id)! })),
        ca_certificate_pem: caCertificatePem,
      },
    };
  });
}
