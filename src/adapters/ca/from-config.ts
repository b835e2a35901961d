// Builds the configured certificate authority: GK_CA=local (default) | cfssl.
import type pg from "pg";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { type SecretBox, secretBoxFromEnv } from "../../lib/secrets.ts";
import { CfsslCa } from "./cfssl.ts";
import { LocalCa } from "./local.ts";
import { DEFAULT_CA_TIMEOUT_MS, withTimeout } from "./timeout.ts";
import type { CertificateAuthority } from "./types.ts";

const flag = z.enum(["0", "1", "true", "false", ""]).transform((v) => v === "1" || v === "true");
const ms = z.coerce.number().int().min(0);

const CaEnv = z.object({
  GK_CA: z.enum(["local", "cfssl"]).default("local"),
  GK_CA_NAME: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/)
    .default("default"),
  GK_CA_DEFERRED: flag.default(false),
  GK_CA_DEFERRED_DELAY_MS: ms.default(0),
  GK_CA_CRL_DEBOUNCE_MS: ms.default(10_000),
  GK_CA_CRL_VALIDITY_MS: ms.min(60_000).default(24 * 3600_000),
  GK_CFSSL_URL: z.url().optional(),
  GK_CFSSL_LABEL: z.string().optional(),
  GK_CFSSL_TIMEOUT_MS: ms.min(1).default(10_000),
  /** Deadline of every CA call (issue, lookup, revoke, CRL), whatever the CA. */
  GK_CA_TIMEOUT_MS: ms.min(1).max(600_000).default(DEFAULT_CA_TIMEOUT_MS),
});

export type CaEnv = z.infer<typeof CaEnv>;

export function parseCaEnv(env: NodeJS.ProcessEnv): CaEnv {
  const parsed = CaEnv.safeParse(env);
  if (!parsed.success) {
    throw new UserError(`invalid CA configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return parsed.data;
}

/**
 * The local CA keeps its state in the database, so it needs the pool; without one (a process
 * that does not talk to the database) there is no CA and tasks needing it fail clearly. Its key
 * is sealed under the process's master key (`secrets`; else the one from the environment).
 */
export async function caFromEnv(
  env: NodeJS.ProcessEnv,
  home: string,
  deps: { pool?: pg.Pool; secrets?: SecretBox } = {},
): Promise<CertificateAuthority | undefined> {
  const cfg = parseCaEnv(env);
  if (cfg.GK_CA === "local") {
    if (!deps.pool) return undefined;
    const local = new LocalCa(deps.pool, deps.secrets ?? secretBoxFromEnv(env, home), {
      name: cfg.GK_CA_NAME,
      deferred: cfg.GK_CA_DEFERRED,
      deferredDelayMs: cfg.GK_CA_DEFERRED_DELAY_MS,
      crlDebounceMs: cfg.GK_CA_CRL_DEBOUNCE_MS,
      crlValidityMs: cfg.GK_CA_CRL_VALIDITY_MS,
    });
    return withTimeout(local, cfg.GK_CA_TIMEOUT_MS);
  }
  if (!cfg.GK_CFSSL_URL) throw new UserError("GK_CA=cfssl needs GK_CFSSL_URL (the address of `cfssl serve`)");
  const cfssl = new CfsslCa({
    url: cfg.GK_CFSSL_URL,
    ...(cfg.GK_CFSSL_LABEL ? { label: cfg.GK_CFSSL_LABEL } : {}),
    timeoutMs: Math.min(cfg.GK_CFSSL_TIMEOUT_MS, cfg.GK_CA_TIMEOUT_MS),
    crlCacheMs: cfg.GK_CA_CRL_DEBOUNCE_MS,
  });
  return withTimeout(cfssl, cfg.GK_CA_TIMEOUT_MS);
}
