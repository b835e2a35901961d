// The built-in CA: real X.509 (ECDSA P-256) with every bit of state in PostgreSQL, so any number
// of worker processes share one CA. The CA key is sealed with the master key (SecretBox).
// Deferred mode signs a certificate only when it is first fetched (or after a delay), like a
// managed CA with asynchronous issuance: issue() then returns serial null.
import type pg from "pg";
import type { SecretBox } from "../../lib/secrets.ts";
import {
  CaRequestError,
  CaUnavailableError,
  normalizeSerial,
  type CertificateAuthority,
  type FetchResult,
  type IssuedUnderKey,
  type IssueRequest,
  type IssueResult,
  type RevocationReason,
} from "./types.ts";
import {
  createCaCertificate,
  crlNumberExtension,
  EC_SIGN,
  generateKeyPair,
  importEcPrivateKey,
  keyIdentifier,
  parsePublicKey,
  publicKeyOfCsr,
  privateKeyToPem,
  publicKeyToPem,
  randomSerial,
  crlEntryReason,
  crlToPem,
  REASONS,
  serialForX509,
  signLeafCertificate,
  validateIssueRequest,
  x509,
} from "./x509.ts";

export interface LocalCaOptions {
  /** Several CAs may live in one database; default "default". */
  name?: string;
  /** Asynchronous issuance: issue() returns serial null, the certificate is signed on fetch. */
  deferred?: boolean;
  /** Deferred mode: fetch() answers "pending" until this long after issue(). Default 0. */
  deferredDelayMs?: number;
  /** crlPem() regenerates a stale CRL at most once per this interval. Default 10 s. */
  crlDebounceMs?: number;
  /** nextUpdate − thisUpdate; a CRL older than half of this is regenerated. Default 24 h. */
  crlValidityMs?: number;
}

interface Authority {
  cert: x509.X509Certificate;
  keyId: string;
  pem: string;
  key: CryptoKey;
}

interface CertRow {
  id: string;
  common_name: string;
  profile: IssueRequest["profile"];
  public_key_pem: string;
  not_after: Date;
  status: "pending" | "issued" | "revoked" | "failed";
  serial: string | null;
  pem: string | null;
  due: boolean;
  failure: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class LocalCa implements CertificateAuthority {
  readonly kind = "local";
  readonly name: string;
  readonly deferred: boolean;
  readonly #pool: pg.Pool;
  readonly #box: SecretBox;
  readonly #delayMs: number;
  readonly #debounceMs: number;
  readonly #validityMs: number;
  #authority?: Promise<Authority>;

  constructor(pool: pg.Pool, box: SecretBox, opts: LocalCaOptions = {}) {
    this.#pool = pool;
    this.#box = box;
    this.name = opts.name ?? "default";
    this.deferred = opts.deferred ?? false;
    this.#delayMs = opts.deferredDelayMs ?? 0;
    this.#debounceMs = opts.crlDebounceMs ?? 10_000;
    this.#validityMs = opts.crlValidityMs ?? 24 * 3600_000;
  }

  async caCertificatePem(): Promise<string> {
    return unavailableOnConnectionError(async () => (await this.#ensureAuthority()).pem);
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    validateIssueRequest(req);
    let publicKey: x509.PublicKey;
    let privateKeyPem: string | undefined;
    if (req.csrPem) {
      publicKey = await publicKeyOfCsr(req.csrPem);
    } else if (req.publicKeyPem) {
      publicKey = parsePublicKey(req.publicKeyPem);
    } else {
      const keys = await generateKeyPair();
      privateKeyPem = await privateKeyToPem(keys.privateKey);
      publicKey = parsePublicKey(await publicKeyToPem(keys.publicKey));
    }
    return unavailableOnConnectionError(async () => {
      const ca = await this.#ensureAuthority();
      if (this.deferred) {
        const { rows } = await this.#pool.query(
          `insert into gk_private.local_ca_certificates
             (authority, common_name, profile, public_key_pem, not_after, status, issue_after, request_key)
           values ($1, $2, $3, $4, $5, 'pending', now() + $6 * interval '1 millisecond', $7) returning id`,
          [this.name, req.commonName, req.profile, publicKey.toString("pem"), req.notAfter, this.#delayMs, req.requestKey ?? null],
        );
        return { caRef: rows[0].id, serial: null, ...(privateKeyPem ? { privateKeyPem } : {}) };
      }
      for (let attempt = 0; ; attempt++) {
        const serial = randomSerial();
        const cert = await signLeafCertificate({ caCert: ca.cert, caKeyId: ca.keyId, caKey: ca.key, serial, ...req, publicKey });
        const pem = `${cert.toString("pem")}\n`;
        try {
          const { rows } = await this.#pool.query(
            `insert into gk_private.local_ca_certificates
               (authority, common_name, profile, public_key_pem, not_after, status, serial, pem, issued_at, request_key)
             values ($1, $2, $3, $4, $5, 'issued', $6, $7, now(), $8) returning id`,
            [this.name, req.commonName, req.profile, publicKey.toString("pem"), cert.notAfter, serial, pem, req.requestKey ?? null],
          );
          return {
            caRef: rows[0].id,
            serial,
            pem,
            notBefore: cert.notBefore,
            notAfter: cert.notAfter,
            ...(privateKeyPem ? { privateKeyPem } : {}),
          };
        } catch (e) {
          // A 128-bit serial collision is astronomically unlikely; retry once with a new one.
          if ((e as { code?: string }).code !== "23505" || attempt > 0) throw e;
        }
      }
    });
  }

  async fetch(caRef: string): Promise<FetchResult> {
    if (!UUID.test(caRef)) return { status: "failed", reason: `unknown certificate handle ${JSON.stringify(caRef)}` };
    return unavailableOnConnectionError(async () => {
      const row = await this.#selectCert(this.#pool, caRef, false);
      if (!row) return { status: "failed", reason: `unknown certificate handle ${caRef}` };
      if (row.status === "failed") return { status: "failed", reason: row.failure ?? "failed" };
      if (row.status !== "pending") return issued(row);
      if (!row.due) return { status: "pending" };
      return this.#signPending(caRef);
    });
  }

  /** What was issued (or is pending) under a request key; declined requests are left out. */
  async lookup(requestKey: string): Promise<IssuedUnderKey[]> {
    return unavailableOnConnectionError(async () => {
      const { rows } = await this.#pool.query<{ id: string; serial: string | null; status: IssuedUnderKey["status"] }>(
        `select id, serial, status from gk_private.local_ca_certificates
          where authority = $1 and request_key = $2 and status <> 'failed' order by requested_at, id`,
        [this.name, requestKey],
      );
      return rows.map((r) => ({ caRef: r.id, serial: r.serial, status: r.status }));
    });
  }

  async revoke(serial: string, reason: RevocationReason): Promise<void> {
    await this.revokeMany([serial], reason);
  }

  async revokeMany(serials: string[], reason: RevocationReason): Promise<void> {
    if (!REASONS.includes(reason)) throw new CaRequestError(`invalid revocation reason ${JSON.stringify(reason)}`);
    const normalised = [...new Set(serials.map(normalizeSerial))];
    if (normalised.length === 0) return;
    await unavailableOnConnectionError(async () => {
      await this.#ensureAuthority();
      try {
        await this.#pool.query("select gk_private.local_ca_revoke($1, $2, $3)", [this.name, normalised, reason]);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "P0002" || code === "22023") throw new CaRequestError((e as Error).message);
        throw e;
      }
    });
  }

  /**
   * The cached CRL. A revocation marks it stale; a stale CRL is regenerated at most once per
   * crlDebounceMs (so a burst of revocations costs one signature), an ageing one at once.
   */
  async crlPem(): Promise<string> {
    return unavailableOnConnectionError(async () => {
      await this.#ensureAuthority();
      const { rows } = await this.#pool.query(
        `select crl_pem, ${this.#needsCrlSql()} as regenerate from gk_private.local_ca_authorities where name = $1`,
        [this.name, this.#debounceMs, this.#validityMs],
      );
      if (rows[0].crl_pem && !rows[0].regenerate) return rows[0].crl_pem as string;
      return (await this.#regenerateCrl(false)).pem;
    });
  }

  /** For the periodic task: regenerates when stale or ageing, ignoring the debounce interval. */
  async refreshCrl(opts: { force?: boolean } = {}): Promise<{ refreshed: boolean }> {
    return unavailableOnConnectionError(async () => {
      await this.#ensureAuthority();
      return { refreshed: (await this.#regenerateCrl(true, opts.force ?? false)).regenerated };
    });
  }

  /** Deferred mode: the CA declines a pending request (what a managed CA may do). */
  async rejectPending(caRef: string, failure: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `update gk_private.local_ca_certificates set status = 'failed', failure = $3
        where id = $1 and authority = $2 and status = 'pending'`,
      [caRef, this.name, failure],
    );
    return rowCount === 1;
  }

  // SQL: does the CRL need regenerating? $2 = debounce ms, $3 = validity ms.
  #needsCrlSql(): string {
    return `(crl_pem is null
             or (revocation_seq > crl_revision and crl_this_update <= now() - $2 * interval '1 millisecond')
             or crl_this_update <= now() - ($3 / 2) * interval '1 millisecond')`;
  }

  async #regenerateCrl(ignoreDebounce: boolean, force = false): Promise<{ pem: string; regenerated: boolean }> {
    const ca = await this.#ensureAuthority();
    const client = await this.#pool.connect();
    try {
      await client.query("begin");
      // The row lock serialises regenerations across processes; a revocation bumping
      // revocation_seq waits for it, so a CRL never claims to cover a revocation it missed.
      const { rows } = await client.query(
        `select crl_pem, crl_number, revocation_seq, ${this.#needsCrlSql()} as regenerate
           from gk_private.local_ca_authorities where name = $1 for update`,
        [this.name, ignoreDebounce ? 0 : this.#debounceMs, this.#validityMs],
      );
      const a = rows[0];
      if (a.crl_pem && !a.regenerate && !force) {
        await client.query("commit");
        return { pem: a.crl_pem as string, regenerated: false };
      }
      const revoked = await client.query(
        `select serial, revoked_at, reason from gk_private.local_ca_certificates
          where authority = $1 and status = 'revoked' and not_after > now() - interval '1 day'
          order by revoked_at, serial`,
        [this.name],
      );
      const number = BigInt(a.crl_number) + 1n;
      const thisUpdate = new Date();
      const nextUpdate = new Date(thisUpdate.getTime() + this.#validityMs);
      const crl = await x509.X509CrlGenerator.create({
        issuer: ca.cert.subjectName,
        thisUpdate,
        nextUpdate,
        signingAlgorithm: EC_SIGN,
        signingKey: ca.key,
        extensions: [crlNumberExtension(number), new x509.AuthorityKeyIdentifierExtension(ca.keyId)],
        entries: revoked.rows.map((r) => ({
          serialNumber: serialForX509(r.serial),
          revocationDate: r.revoked_at,
          ...crlEntryReason(r.reason),
        })),
      });
      const pem = crlToPem(crl);
      await client.query(
        `update gk_private.local_ca_authorities
            set crl_pem = $2, crl_number = $3, crl_revision = $4, crl_this_update = $5, crl_next_update = $6
          where name = $1`,
        [this.name, pem, number.toString(), a.revocation_seq, thisUpdate, nextUpdate],
      );
      await client.query("commit");
      return { pem, regenerated: true };
    } catch (e) {
      await client.query("rollback").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  async #selectCert(db: pg.Pool | pg.PoolClient, caRef: string, lock: boolean): Promise<CertRow | undefined> {
    const { rows } = await db.query<CertRow>(
      `select id, common_name, profile, public_key_pem, not_after, status, serial, pem, failure,
              coalesce(issue_after <= now(), true) as due
         from gk_private.local_ca_certificates where id = $1 and authority = $2 ${lock ? "for update" : ""}`,
      [caRef, this.name],
    );
    return rows[0];
  }

  async #signPending(caRef: string): Promise<FetchResult> {
    const ca = await this.#ensureAuthority();
    const client = await this.#pool.connect();
    try {
      await client.query("begin");
      // Two fetches racing: the row lock lets one sign; the other sees the signed certificate.
      const row = (await this.#selectCert(client, caRef, true))!;
      if (row.status !== "pending") {
        await client.query("commit");
        return row.status === "failed" ? { status: "failed", reason: row.failure ?? "failed" } : issued(row);
      }
      if (row.not_after.getTime() <= Date.now()) {
        const failure = "requested notAfter passed before issuance";
        await client.query(`update gk_private.local_ca_certificates set status = 'failed', failure = $2 where id = $1`, [caRef, failure]);
        await client.query("commit");
        return { status: "failed", reason: failure };
      }
      const serial = randomSerial();
      const cert = await signLeafCertificate({
        caCert: ca.cert,
        caKeyId: ca.keyId,
        caKey: ca.key,
        serial,
        commonName: row.common_name,
        profile: row.profile,
        publicKey: parsePublicKey(row.public_key_pem),
        notAfter: row.not_after,
      });
      const pem = `${cert.toString("pem")}\n`;
      await client.query(
        `update gk_private.local_ca_certificates
            set status = 'issued', serial = $2, pem = $3, issued_at = now(), not_after = $4
          where id = $1`,
        [caRef, serial, pem, cert.notAfter],
      );
      await client.query("commit");
      return { status: "issued", pem, serial, notAfter: cert.notAfter, notBefore: cert.notBefore };
    } catch (e) {
      await client.query("rollback").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  #ensureAuthority(): Promise<Authority> {
    this.#authority ??= this.#loadOrCreateAuthority().catch((e) => {
      this.#authority = undefined; // retry on the next call (e.g. the database was down)
      throw e;
    });
    return this.#authority;
  }

  async #loadOrCreateAuthority(): Promise<Authority> {
    let row = await this.#selectAuthority();
    if (!row) {
      // Two processes may get here at once: both generate, one insert wins, both use the winner.
      const keys = await generateKeyPair();
      const cert = await createCaCertificate(`Groundskeeper local CA ${this.name}`, keys);
      const sealed = this.#box.seal(await privateKeyToPem(keys.privateKey), this.#context());
      await this.#pool.query(
        `insert into gk_private.local_ca_authorities (name, certificate_pem, private_key_sealed)
         values ($1, $2, $3) on conflict (name) do nothing`,
        [this.name, `${cert.toString("pem")}\n`, sealed],
      );
      row = (await this.#selectAuthority())!;
    }
    const keyPem = this.#box.open(row.private_key_sealed, this.#context()).toString("utf8");
    const cert = new x509.X509Certificate(row.certificate_pem);
    return { cert, keyId: keyIdentifier(cert.publicKey), pem: row.certificate_pem, key: await importEcPrivateKey(keyPem) };
  }

  async #selectAuthority(): Promise<{ certificate_pem: string; private_key_sealed: string } | undefined> {
    const { rows } = await this.#pool.query(
      "select certificate_pem, private_key_sealed from gk_private.local_ca_authorities where name = $1",
      [this.name],
    );
    return rows[0];
  }

  #context(): string {
    return `local-ca:${this.name}`;
  }
}

function issued(row: CertRow): FetchResult {
  return { status: "issued", pem: row.pem!, serial: row.serial!, notAfter: row.not_after };
}

// The local CA is "unreachable" when its database is: callers keep the work pending and retry.
const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "57P01", "57P02", "57P03"]);
async function unavailableOnConnectionError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (CONNECTION_CODES.has(code) || code.startsWith("08") || /Connection terminated/i.test((e as Error).message ?? ""))
      throw new CaUnavailableError(`local CA database unreachable: ${(e as Error).message}`, { cause: e });
    throw e;
  }
}
