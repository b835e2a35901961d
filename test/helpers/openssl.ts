// Runs the real openssl CLI on PEM inputs written to a temp dir (for X.509/CRL assertions).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface OpensslResult {
  status: number | null;
  out: string;
}

/** `files` are written to a temp dir; `{name}` placeholders in args become their paths. */
export function openssl(args: string[], files: Record<string, string> = {}): OpensslResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-openssl-"));
  try {
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
    const real = args.map((a) => a.replace(/\{([^}]+)\}/g, (_, n: string) => path.join(dir, n)));
    const r = spawnSync("openssl", real, { encoding: "utf8" });
    if (r.error) throw r.error;
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl verify -crl_check` of a certificate against the CA and its CRL. */
export function verifyWithCrl(caPem: string, crlPem: string, certPem: string): OpensslResult {
  return openssl(["verify", "-crl_check", "-CAfile", "{chain.pem}", "{cert.pem}"], {
    "chain.pem": `${caPem.trim()}\n${crlPem.trim()}\n`,
    "cert.pem": certPem,
  });
}

/** The serial as openssl prints it, normalised like the adapters do. */
export function opensslSerial(certPem: string): string {
  const r = openssl(["x509", "-noout", "-serial", "-in", "{c.pem}"], { "c.pem": certPem });
  const m = /serial=([0-9A-Fa-f]+)/.exec(r.out);
  if (!m) throw new Error(`openssl printed no serial: ${r.out}`);
  return m[1]!.toLowerCase().replace(/^0+/, "") || "0";
}
