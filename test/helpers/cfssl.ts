// A real `cfssl serve` (Debian package golang-cfssl, listed in .ci/apt-packages) with its own
// CA (`cfssl gencert -initca`) and a sqlite certificate DB, on a free port. stop() kills it
// (an outage); start() brings it back on the same port with the same CA and DB.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { freePort } from "../../src/db/embedded.ts";
import { killAndWait } from "./child.ts";

// cfssl's certdb schema for sqlite (certdb/sqlite/migrations/001_CreateCertificates.sql).
const CERTDB_SCHEMA = `
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);`;

const PROFILE = { expiry: "8760h", usages: ["digital signature", "key encipherment", "client auth"] };
const SIGNING_CONFIG = { signing: { default: PROFILE, profiles: { robot: PROFILE, client_auth: PROFILE, provisioning: PROFILE } } };

export interface CfsslServer {
  url: string;
  dir: string;
  caPem: string;
  caKeyPem: string;
  version: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
  /** Rows of cfssl's certificate DB (serials in decimal, as cfssl stores them). */
  certdbRows(): { serial_number: string; authority_key_identifier: string; status: string; reason: number | null; pem: string }[];
  /** A CRL made by cfssl's own `cfssl gencrl` from the DB's revoked serials (PEM). */
  gencrlFromDb(): string;
}

export function cfsslVersion(): string {
  const r = spawnSync("cfssl", ["version"], { encoding: "utf8" });
  if (r.error) throw new Error("cfssl is not installed: apt-get install golang-cfssl (listed in .ci/apt-packages)");
  return /Version:\s*(\S+)/.exec(r.stdout)?.[1] ?? "unknown";
}

export async function startCfssl(): Promise<CfsslServer> {
  const version = cfsslVersion();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-cfssl-"));
  const initca = spawnSync("cfssl", ["gencert", "-initca", "-"], {
    input: JSON.stringify({ CN: "Groundskeeper test cfssl CA", key: { algo: "ecdsa", size: 256 } }),
    encoding: "utf8",
  });
  if (initca.status !== 0) throw new Error(`cfssl gencert -initca failed: ${initca.stderr}`);
  const { cert: caPem, key: caKeyPem } = JSON.parse(initca.stdout) as { cert: string; key: string };
  fs.writeFileSync(path.join(dir, "ca.pem"), caPem);
  fs.writeFileSync(path.join(dir, "ca-key.pem"), caKeyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(SIGNING_CONFIG));
  const dbFile = path.join(dir, "certs.db");
  const db = new DatabaseSync(dbFile);
  db.exec(CERTDB_SCHEMA);
  db.close();
  fs.writeFileSync(path.join(dir, "db.json"), JSON.stringify({ driver: "sqlite3", data_source: dbFile }));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let log = "";

  const self: CfsslServer = {
    url: `http://127.0.0.1:${port}`,
    dir,
    caPem,
    caKeyPem,
    version,
    async start() {
      const c = spawn(
        "cfssl",
        [
          "serve",
          "-address",
          "127.0.0.1",
          "-port",
          String(port),
          "-ca",
          "ca.pem",
          "-ca-key",
          "ca-key.pem",
          "-config",
          "config.json",
          "-db-config",
          "db.json",
          "-loglevel",
          "2",
        ],
        { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
      );
      child = c;
      c.stdout!.on("data", (d) => (log += d));
      c.stderr!.on("data", (d) => (log += d));
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (c.exitCode !== null) throw new Error(`cfssl serve exited with ${c.exitCode}: ${log}`);
        try {
          const res = await fetch(`${self.url}/api/v1/cfssl/info`, { method: "POST", body: "{}" });
          if (res.ok) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`cfssl serve did not answer: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const c = child;
      child = undefined;
      await killAndWait(c);
    },
    async dispose() {
      await self.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    certdbRows() {
      const d = new DatabaseSync(dbFile, { readOnly: true });
      try {
        return d
          .prepare(
            "select cast(serial_number as text) as serial_number, cast(authority_key_identifier as text) as authority_key_identifier, cast(status as text) as status, reason, cast(pem as text) as pem from certificates",
          )
          .all() as ReturnType<CfsslServer["certdbRows"]>;
      } finally {
        d.close();
      }
    },
    gencrlFromDb() {
      const serials = self
        .certdbRows()
        .filter((r) => r.status === "revoked")
        .map((r) => r.serial_number);
      fs.writeFileSync(path.join(dir, "revoked-serials.txt"), `${serials.join("\n")}\n`);
      const r = spawnSync("cfssl", ["gencrl", "revoked-serials.txt", "ca.pem", "ca-key.pem"], { cwd: dir, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`cfssl gencrl failed: ${r.stderr}`);
      const der = Buffer.from(r.stdout.trim(), "base64");
      const b64 = der
        .toString("base64")
        .replace(/(.{64})/g, "$1\n")
        .trim();
      return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
    },
  };
  await self.start();
  return self;
}
