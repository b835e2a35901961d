// Groundskeeper's own identity towards its peers: a certificate of profile 'controller', owned by
// the controllers row, requested through the certificate lifecycle (certificates__issue issues it
// like any other) with a key generated here and kept sealed in gk_private.controller_keys, so
// every Groundskeeper process with the master key presents the same identity. It is renewed when
// a third of its life is left; the old one simply expires (processes switch over as they reload).
import crypto from "node:crypto";
import type pg from "pg";
import { inTransaction } from "../db/pool.ts";
import type { SecretBox } from "../lib/secrets.ts";
import type { PeerCredentials } from "./tls.ts";

export function controllerKeyContext(certificateId: string): string {
  return `controller-key:${certificateId}`;
}

const REQUEST_LOCK = "groundskeeper controller certificate";

export interface ControllerIdentityOptions {
  /** Validity of each certificate (a PostgreSQL interval). */
  validFor?: string;
  /** How long a loaded credential is used before the database is asked again. */
  reloadMs?: number;
}

interface Current {
  credentials: PeerCredentials;
  certificateId: string;
  notAfter: Date;
  loadedAt: number;
}

export class ControllerIdentity {
  readonly #pool: pg.Pool;
  readonly #box: SecretBox;
  readonly #caPem: () => Promise<string>;
  readonly #validFor: string;
  readonly #reloadMs: number;
  #current?: Current;

  constructor(pool: pg.Pool, box: SecretBox, caPem: () => Promise<string>, opts: ControllerIdentityOptions = {}) {
    this.#pool = pool;
    this.#box = box;
    this.#caPem = caPem;
    this.#validFor = opts.validFor ?? "30 days";
    this.#reloadMs = opts.reloadMs ?? 5 * 60_000;
  }

  /** The credentials to present, or null while the first certificate is still being issued. */
  async current(): Promise<PeerCredentials | null> {
    const c = this.#current;
    if (c && Date.now() - c.loadedAt < this.#reloadMs && c.notAfter.getTime() > Date.now()) return c.credentials;
    await this.#load();
    return this.#current?.credentials ?? null;
  }

  /** Waits (polling) until a certificate is issued; a worker process issues it. */
  async wait(timeoutMs = 60_000, pollMs = 500): Promise<PeerCredentials> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.current();
      if (c) return c;
      if (Date.now() > deadline) throw new Error(`no controller certificate issued within ${timeoutMs} ms (is a worker running?)`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  async #load(): Promise<void> {
    const { rows } = await this.#pool.query<{
      id: string;
      pem: string | null;
      sealed_key: string;
      not_after: Date;
      issued_at: Date;
      renew: boolean;
    }>(
      `select c.id, c.pem, k.sealed_key, c.not_after, c.issued_at,
              c.not_after - now() < (c.not_after - c.issued_at) / 3 as renew
         from gk_public.certificates c join gk_private.controller_keys k on k.certificate_id = c.id
        where c.profile = 'controller' and c.status = 'issued' and c.not_after > now()
        order by c.not_after desc limit 1`,
    );
    const row = rows[0];
    if (!row || row.renew) await this.#request();
    if (!row) {
      // None live (revoked, expired): never keep presenting the old one.
      this.#current = undefined;
      return;
    }
    if (!row.pem) {
      // An asynchronous CA: ask for the PEM to be fetched; it is there on a later call.
      await this.#pool.query("select gk_public.download_certificate($1)", [row.id]);
      return;
    }
    this.#current = {
      certificateId: row.id,
      notAfter: row.not_after,
      loadedAt: Date.now(),
      credentials: {
        certPem: row.pem,
        keyPem: this.#box.open(row.sealed_key, controllerKeyContext(row.id)).toString("utf8"),
        caPem: await this.#caPem(),
      },
    };
  }

  /** Requests a new certificate unless one is already on its way (one per deployment at a time). */
  async #request(): Promise<void> {
    await inTransaction(this.#pool, async (c) => {
      await c.query("select pg_advisory_xact_lock(hashtext($1))", [REQUEST_LOCK]);
      const pending = await c.query(
        `select 1 from gk_public.certificates x join gk_private.controller_keys k on k.certificate_id = x.id
          where x.profile = 'controller' and (x.status = 'issuing' or (x.status = 'issued' and x.issued_at > now() - interval '1 minute'))`,
      );
      if (pending.rowCount) return;
      await c.query("insert into gk_public.controllers (name) values ('groundskeeper') on conflict (name) do nothing");
      const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
      const { rows } = await c.query<{ id: string }>(
        `insert into gk_public.certificates (controller_id, profile, public_key_pem, not_after)
         select id, 'controller', $1, date_trunc('second', now() + $2::interval) from gk_public.controllers where name = 'groundskeeper'
         returning id`,
        [publicKey.export({ type: "spki", format: "pem" }), this.#validFor],
      );
      const id = rows[0]!.id;
      const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      await c.query("insert into gk_private.controller_keys (certificate_id, sealed_key) values ($1, $2)", [
        id,
        this.#box.seal(keyPem, controllerKeyContext(id)),
      ]);
    });
  }
}
