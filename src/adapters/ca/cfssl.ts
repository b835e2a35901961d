// CA adapter for cfssl's HTTP API (`cfssl serve` with a certificate database).
// - issue: the key pair and a CSR are made here (the private key never travels), then
//   POST /api/v1/cfssl/sign. cfssl signs synchronously, so the serial is known at once.
// - revoke: POST /api/v1/cfssl/revoke {serial (decimal), authority_key_id (hex), reason}.
// - fetch: POST /api/v1/cfssl/certinfo {serial, authority_key_id} (cfssl ≥ 1.3 looks it up in its DB).
// - CRL: GET /api/v1/cfssl/crl (cfssl ≥ 1.3 builds it from its DB), cached here for
//   crlCacheMs so callers never make cfssl sign one CRL per revocation.
// ca_ref = "<serial hex>:<authority key id hex>", the pair cfssl's certificate DB is keyed by.
// The request key (our certificate id) travels as the subject's serialNumber attribute, so an
// operator can find what cfssl signed for a certificate in its certificate DB; cfssl's API has
// no lookup by subject, so this adapter has no lookup() and the revoke path leaves a certificate
// whose issuance answer was lost "unresolved" (docs/certificates.md).
// CRL: cfssl 1.2 has no /crl endpoint; refreshCrl reports that as CaUnsupportedError.
import {
  CaNotSentError,
  CaRequestError,
  CaUnavailableError,
  CaUnsupportedError,
  normalizeSerial,
  type CertificateAuthority,
  type FetchResult,
  type IssueRequest,
  type IssueResult,
  type RevocationReason,
  subjectExtraRdns,
} from "./types.ts";
import { EC_KEY, EC_SIGN, escapeDn, generateKeyPair, privateKeyToPem, REASONS, validateIssueRequest, x509 } from "./x509.ts";

export interface CfsslCaOptions {
  /** Base URL of `cfssl serve`, e.g. http://127.0.0.1:8888 */
  url: string;
  /** cfssl signer label (multi-root setups); default none. */
  label?: string;
  /** cfssl signing profile per certificate profile; default the same names. */
  profiles?: Partial<Record<IssueRequest["profile"], string>>;
  /** Per-request timeout. Default 10 s. */
  timeoutMs?: number;
  /** crlPem() asks cfssl for a new CRL at most once per this interval. Default 10 s. */
  crlCacheMs?: number;
}

/** Connection errors that happen before a request is written: cfssl cannot have seen it. */
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"]);

/** cfssl's API error codes that mean "this server has no such feature" (older releases). */
const UNSUPPORTED = /no valid parameter sets found|404 page not found/i;

export class CfsslCa implements CertificateAuthority {
  readonly kind = "cfssl";
  readonly #url: string;
  readonly #opts: CfsslCaOptions;
  readonly #timeoutMs: number;
  readonly #crlCacheMs: number;
  #caCert?: Promise<{ pem: string; aki: string }>;
  #crl?: { pem: string; at: number };

  constructor(opts: CfsslCaOptions) {
    this.#url = opts.url.replace(/\/+$/, "");
    this.#opts = opts;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#crlCacheMs = opts.crlCacheMs ?? 10_000;
  }

  async caCertificatePem(): Promise<string> {
    return (await this.#ca()).pem;
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    validateIssueRequest(req);
    if (req.publicKeyPem && !req.csrPem)
      throw new CaRequestError("cfssl signs CSRs: pass csrPem (signed by the holder's key) or no key at all");
    let csrPem = req.csrPem;
    let privateKeyPem: string | undefined;
    if (!csrPem) {
      const keys = await generateKeyPair();
      privateKeyPem = await privateKeyToPem(keys.privateKey);
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: [
          `CN=${escapeDn(req.commonName)}`,
          `OU=${req.profile}`,
          ...subjectExtraRdns(req.subject).map(([k, v]) => `${k}=${escapeDn(v)}`),
          ...(req.requestKey ? [`2.5.4.5=${escapeDn(req.requestKey)}`] : []),
        ].join(", "),
        keys,
        signingAlgorithm: { ...EC_SIGN, ...EC_KEY },
      });
      csrPem = csr.toString("pem");
    }
    const body: Record<string, unknown> = {
      certificate_request: csrPem,
      profile: this.#opts.profiles?.[req.profile] ?? req.profile,
      subject: {
        CN: req.commonName,
        names: [{ OU: req.profile }, ...subjectExtraRdns(req.subject).map(([k, v]) => ({ [k]: v }))],
        ...(req.requestKey ? { SerialNumber: req.requestKey } : {}),
      },
    };
    if (this.#opts.label) body.label = this.#opts.label;
    const result = await this.#call<{ certificate: string }>("POST", "sign", body);
    const cert = new x509.X509Certificate(result.certificate);
    const serial = normalizeSerial(cert.serialNumber);
    const aki = authorityKeyId(cert) ?? (await this.#ca()).aki;
    return {
      caRef: `${serial}:${aki}`,
      serial,
      pem: ensureNewline(result.certificate),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      ...(privateKeyPem ? { privateKeyPem } : {}),
    };
  }

  async fetch(caRef: string): Promise<FetchResult> {
    const ref = parseRef(caRef);
    if (!ref) return { status: "failed", reason: `not a cfssl certificate handle: ${JSON.stringify(caRef)}` };
    try {
      const info = await this.#call<{ pem?: string; serial_number?: string; not_after?: string }>("POST", "certinfo", {
        serial: hexToDecimal(ref.serial),
        authority_key_id: ref.aki,
      });
      if (!info.pem) throw new CaRequestError("cfssl certinfo answered without a certificate (cfssl ≥ 1.3 needed for lookups by serial)");
      const cert = new x509.X509Certificate(info.pem);
      return {
        status: "issued",
        pem: ensureNewline(info.pem),
        serial: normalizeSerial(cert.serialNumber),
        notAfter: cert.notAfter,
        notBefore: cert.notBefore,
      };
    } catch (e) {
      if (e instanceof CaRequestError && /not found/i.test(e.message)) return { status: "failed", reason: e.message };
      if (e instanceof CaRequestError && UNSUPPORTED.test(e.message))
        throw new CaRequestError(
          `this cfssl server cannot look certificates up by serial (certinfo by serial needs cfssl ≥ 1.3): ${e.message}`,
        );
      throw e;
    }
  }

  async revoke(serial: string, reason: RevocationReason): Promise<void> {
    if (!REASONS.includes(reason)) throw new CaRequestError(`invalid revocation reason ${JSON.stringify(reason)}`);
    const decimal = hexToDecimal(normalizeSerial(serial));
    const { aki } = await this.#ca();
    try {
      await this.#call("POST", "revoke", { serial: decimal, authority_key_id: aki, reason });
    } catch (e) {
      // cfssl 1.2 (Debian's golang-cfssl) stored an empty authority key id for every
      // certificate it signed (fixed upstream in 1.3); such rows only match an empty one.
      if (!(e instanceof CaRequestError && /not found/i.test(e.message))) throw e;
      await this.#call("POST", "revoke", { serial: decimal, authority_key_id: "", reason });
    }
  }

  /** At most one CRL request to cfssl per crlCacheMs, however many revocations happen. */
  async crlPem(): Promise<string> {
    if (this.#crl && Date.now() - this.#crl.at < this.#crlCacheMs) return this.#crl.pem;
    await this.refreshCrl();
    return this.#crl!.pem;
  }

  /** cfssl builds a CRL on every request: a refresh always makes a new one (when it can). */
  async refreshCrl(): Promise<{ refreshed: boolean }> {
    let der64: string;
    try {
      der64 = await this.#call<string>("GET", "crl");
    } catch (e) {
      if (e instanceof CaRequestError && UNSUPPORTED.test(e.message))
        throw new CaUnsupportedError(`this cfssl server has no CRL endpoint (/api/v1/cfssl/crl needs cfssl ≥ 1.3): ${e.message}`);
      throw e;
    }
    const pem = `${x509.PemConverter.encode(Buffer.from(der64, "base64"), "X509 CRL")}\n`;
    this.#crl = { pem, at: Date.now() };
    return { refreshed: true };
  }

  #ca(): Promise<{ pem: string; aki: string }> {
    this.#caCert ??= (async () => {
      const body = this.#opts.label ? { label: this.#opts.label } : {};
      const info = await this.#call<{ certificate: string }>("POST", "info", body);
      const cert = new x509.X509Certificate(info.certificate);
      const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
      return { pem: ensureNewline(info.certificate), aki: ski ? ski.keyId.toLowerCase() : "" };
    })().catch((e) => {
      this.#caCert = undefined;
      throw e;
    });
    return this.#caCert;
  }

  /** One API call; transport failures and 5xx → CaUnavailableError, refusals → CaRequestError. */
  async #call<T>(method: "GET" | "POST", endpoint: string, body?: unknown): Promise<T> {
    const url = `${this.#url}/api/v1/cfssl/${endpoint}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        ...(method === "POST" ? { body: JSON.stringify(body ?? {}), headers: { "content-type": "application/json" } } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      const code = (e as { cause?: { code?: string } }).cause?.code ?? "";
      const Unavailable = NOT_SENT.has(code) ? CaNotSentError : CaUnavailableError;
      throw new Unavailable(`cfssl at ${this.#url} unreachable: ${describe(e)}`, { cause: e });
    }
    const text = await res.text().catch((e) => {
      throw new CaUnavailableError(`cfssl at ${this.#url}: reading the answer failed: ${describe(e)}`, { cause: e });
    });
    if (res.status >= 500 && !text.trimStart().startsWith("{"))
      throw new CaUnavailableError(`cfssl at ${this.#url} answered ${res.status}: ${text.slice(0, 200)}`);
    let parsed: { success?: boolean; result?: T; errors?: { code: number; message: string }[] };
    try {
      parsed = JSON.parse(text);
    } catch {
      if (res.status >= 500 || res.status === 429) throw new CaUnavailableError(`cfssl at ${this.#url} answered ${res.status}`);
      throw new CaRequestError(`cfssl ${endpoint} answered ${res.status}: ${text.slice(0, 200).trim()}`);
    }
    if (!parsed.success) {
      const msg = (parsed.errors ?? []).map((e) => `${e.code}: ${e.message}`).join("; ") || `HTTP ${res.status}`;
      // cfssl answers everything with 400, so its error categories tell a refusal from its own
      // failure: 11000 = certificate DB failure (not "not found", 11200), 6xxx = its upstream
      // signer unreachable. Those, and any 5xx, are worth a retry.
      const infra = (parsed.errors ?? []).some((e) => e.code === 11000 || (e.code >= 6000 && e.code < 7000));
      if (infra || res.status >= 500 || res.status === 429)
        throw new CaUnavailableError(`cfssl ${endpoint} failed (${res.status}): ${msg}`);
      throw new CaRequestError(`cfssl ${endpoint} refused: ${msg}`);
    }
    return parsed.result as T;
  }
}

function parseRef(caRef: string): { serial: string; aki: string } | undefined {
  const m = /^([0-9a-f]+):([0-9a-f]*)$/.exec(caRef);
  return m ? { serial: m[1]!, aki: m[2]! } : undefined;
}

/** cfssl keys its DB by the serial in decimal (Go's big.Int.String()). */
export function hexToDecimal(hex: string): string {
  return BigInt(`0x${hex}`).toString(10);
}

function authorityKeyId(cert: x509.X509Certificate): string | undefined {
  const ext = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  return ext?.keyId?.toLowerCase();
}

function ensureNewline(pem: string): string {
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

function describe(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  return [err.cause?.code ?? err.name, err.cause?.message ?? err.message].filter(Boolean).join(": ");
}
