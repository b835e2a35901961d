// Secrets at rest (CA keys, TUF online keys): AES-256-GCM under a master key that never enters
// the database. The master key comes from GK_MASTER_KEY (32 bytes, base64) or, for the embedded
// laptop setup, from a key file created on first use under the data directory (mode 0600).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { UserError } from "./errors.ts";

const VERSION = "v1";

function readKeyFile(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new UserError(`cannot read GK_MASTER_KEY_FILE ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export class SecretBox {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error("master key must be 32 bytes");
    this.#key = key;
  }

  /** Names the key without revealing it (HMAC-SHA256 of a fixed label): equal keys, equal fingerprints. */
  fingerprint(): string {
    return crypto.createHmac("sha256", this.#key).update("groundskeeper master key fingerprint v1").digest("hex");
  }

  /** "v1:<iv>:<tag>:<ciphertext>" (base64 parts). `context` binds the ciphertext to its use. */
  seal(plaintext: string | Uint8Array, context = ""): string {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv("aes-256-gcm", this.#key, iv);
    c.setAAD(Buffer.from(context));
    const ct = Buffer.concat([c.update(typeof plaintext === "string" ? Buffer.from(plaintext) : plaintext), c.final()]);
    return [VERSION, iv.toString("base64"), c.getAuthTag().toString("base64"), ct.toString("base64")].join(":");
  }

  open(sealed: string, context = ""): Buffer {
    const [v, iv, tag, ct] = sealed.split(":");
    if (v !== VERSION || !iv || !tag || ct === undefined) throw new Error("not a sealed secret");
    const d = crypto.createDecipheriv("aes-256-gcm", this.#key, Buffer.from(iv, "base64"));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(Buffer.from(tag, "base64"));
    return Buffer.concat([d.update(Buffer.from(ct, "base64")), d.final()]);
  }
}

export function secretBoxFromEnv(env: NodeJS.ProcessEnv, home: string): SecretBox {
  // GK_MASTER_KEY_FILE: a file holding the key, such as a Docker/compose secret (/run/secrets/…).
  const fromFile = env.GK_MASTER_KEY_FILE ? readKeyFile(env.GK_MASTER_KEY_FILE) : undefined;
  const given = env.GK_MASTER_KEY || fromFile;
  if (given) {
    const key = Buffer.from(given, "base64");
    const name = env.GK_MASTER_KEY ? "GK_MASTER_KEY" : `the key in GK_MASTER_KEY_FILE (${env.GK_MASTER_KEY_FILE})`;
    if (key.length !== 32) throw new UserError(`${name} must be 32 bytes, base64-encoded (openssl rand -base64 32)`);
    return new SecretBox(key);
  }
  const file = path.join(home, "master.key");
  if (!fs.existsSync(file)) {
    fs.mkdirSync(home, { recursive: true });
    try {
      fs.writeFileSync(file, crypto.randomBytes(32).toString("base64"), { mode: 0o600, flag: "wx" });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  return new SecretBox(Buffer.from(fs.readFileSync(file, "utf8").trim(), "base64"));
}
