// A peer without database access (an agent) checks revocation against the CA's CRL: signature
// verified with the CA certificate, kept on disk so a restart does not need Groundskeeper first.
import fs from "node:fs";
import { x509 } from "../adapters/ca/x509.ts";
import { normalizeSerial } from "../adapters/ca/types.ts";

export class RevocationList {
  #revoked = new Set<string>();
  #number = -1n;
  #thisUpdate?: Date;
  readonly #ca: x509.X509Certificate;
  readonly #file?: string;

  constructor(caPem: string, file?: string) {
    this.#ca = new x509.X509Certificate(caPem);
    this.#file = file;
  }

  get loaded(): boolean {
    return this.#thisUpdate !== undefined;
  }

  get thisUpdate(): Date | undefined {
    return this.#thisUpdate;
  }

  /** Loads the copy kept on disk, if any (a bad copy is ignored: the next fetch replaces it). */
  async loadSaved(): Promise<void> {
    if (!this.#file || !fs.existsSync(this.#file)) return;
    await this.update(fs.readFileSync(this.#file, "utf8")).catch(() => {});
  }

  /** Accepts a CRL that verifies against the CA and is not older than the one held. */
  async update(pem: string): Promise<boolean> {
    const crl = new x509.X509Crl(pem);
    if (!(await crl.verify({ publicKey: await this.#ca.publicKey.export() }))) {
      throw new Error("CRL signature does not verify against the CA certificate");
    }
    const ext = crl.getExtension("2.5.29.20");
    const number = ext ? BigInt(`0x${Buffer.from(ext.value).subarray(2).toString("hex") || "0"}`) : 0n;
    if (this.#thisUpdate && (number < this.#number || crl.thisUpdate < this.#thisUpdate)) return false;
    this.#revoked = new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber)));
    this.#number = number;
    this.#thisUpdate = crl.thisUpdate;
    if (this.#file) fs.writeFileSync(this.#file, pem);
    return true;
  }

  isRevoked(serial: string): boolean {
    return this.#revoked.has(normalizeSerial(serial));
  }
}
