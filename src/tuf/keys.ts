// ed25519 keys in TUF form: keyid = sha256 of the canonical JSON of the public key object,
// public value as hex, signatures as hex over the canonical JSON of `signed`.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { canonicalize } from "@tufjs/canonical-json";
import { UserError } from "../lib/errors.ts";

export interface PublicKey {
  keyid: string;
  /** The TUF key object as it appears in root / delegations. */
  key: { keytype: "ed25519"; scheme: "ed25519"; keyval: { public: string } };
}

export interface SigningKey extends PublicKey {
  privateKey: crypto.KeyObject;
}

export function publicKeyOf(publicHex: string): PublicKey {
  const key = { keytype: "ed25519" as const, scheme: "ed25519" as const, keyval: { public: publicHex } };
  const keyid = crypto.createHash("sha256").update(canonicalize(key)).digest("hex");
  return { keyid, key };
}

export function generateKey(): SigningKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  return { ...publicKeyOf(rawPublicHex(publicKey)), privateKey };
}

function rawPublicHex(k: crypto.KeyObject): string {
  const jwk = k.export({ format: "jwk" });
  return Buffer.from(jwk.x as string, "base64url").toString("hex");
}

export function signingKeyFromPem(pem: string): SigningKey {
  const privateKey = crypto.createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== "ed25519") throw new UserError("only ed25519 keys are supported");
  return { ...publicKeyOf(rawPublicHex(crypto.createPublicKey(privateKey))), privateKey };
}

export function privatePem(k: SigningKey): string {
  return k.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
}

/** Signs canonical bytes; the TUF signature object. */
export function signBytes(k: SigningKey, bytes: Uint8Array): { keyid: string; sig: string } {
  return { keyid: k.keyid, sig: crypto.sign(null, bytes, k.privateKey).toString("hex") };
}

/** signBytes on libuv's threadpool: many of these in flight sign on every core. */
export function signBytesAsync(k: SigningKey, bytes: Uint8Array): Promise<{ keyid: string; sig: string }> {
  return new Promise((resolve, reject) =>
    crypto.sign(null, bytes, k.privateKey, (e, sig) => (e ? reject(e) : resolve({ keyid: k.keyid, sig: sig.toString("hex") }))),
  );
}

// ---- Root key files: what `tuf init` and `tuf keygen` hand to the operator (mode 0600). ----

export interface KeyFile {
  keyid: string;
  keytype: "ed25519";
  scheme: "ed25519";
  keyval: { public: string };
  private_pem: string;
}

/** Writes a key file; refuses to overwrite an existing one. Returns its path. */
export function writeKeyFile(dir: string, name: string, k: SigningKey): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, name);
  const body: KeyFile = { keyid: k.keyid, ...k.key, private_pem: privatePem(k) };
  try {
    fs.writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new UserError(`refusing to overwrite key file ${file}`);
    throw e;
  }
  return file;
}

export function readKeyFile(file: string): SigningKey {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`cannot read key file ${file}: ${(e as Error).message}`);
  }
  if (typeof parsed?.private_pem !== "string") throw new UserError(`${file} is not a TUF key file (no private_pem)`);
  const k = signingKeyFromPem(parsed.private_pem);
  if (parsed.keyid && parsed.keyid !== k.keyid) throw new UserError(`${file}: keyid does not match its private key`);
  return k;
}

/** `tuf keygen`: n new ed25519 key files (e.g. the new keys of a root rotation). */
export function generateKeyFiles(dir: string, prefix: string, n: number): { file: string; keyid: string }[] {
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new UserError("--count must be 1..32");
  return Array.from({ length: n }, () => {
    const k = generateKey();
    return { file: writeKeyFile(dir, `${prefix}.${k.keyid.slice(0, 12)}.json`, k), keyid: k.keyid };
  });
}
