// A real Uptane-style client of one robot's director metadata: tuf-js's Updater over mutual TLS
// (the robot's own certificate) against the robot API, and securesystemslib's independent
// verdict on what it trusts (verify_director.py). Used by client.test.ts and move.test.ts.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { canonicalize } from "@tufjs/canonical-json";
import { BaseFetcher, Updater } from "tuf-js";
import { DownloadHTTPError } from "tuf-js/dist/error.js";
import { expect } from "vitest";
import { expectPeer } from "../../../src/peers/tls.ts";
import { needs } from "../../helpers/requirements.ts";
import type { RobotApiHarness, RobotCredentials } from "../../robots/helpers/robot-api.ts";

/** tuf-js's fetcher over HTTPS with the robot's client certificate. */
class MutualTlsFetcher extends BaseFetcher {
  private readonly creds: RobotCredentials;
  private readonly caPem: string;
  constructor(creds: RobotCredentials, caPem: string) {
    super();
    this.creds = creds;
    this.caPem = caPem;
  }
  fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    return new Promise((resolve, reject) => {
      https
        .get(
          url,
          { ca: this.caPem, key: this.creds.keyPem, cert: this.creds.certPem, checkServerIdentity: expectPeer("controller"), agent: false },
          (res) => {
            if (res.statusCode !== 200) {
              res.resume();
              return reject(new DownloadHTTPError(`GET ${url}: ${res.statusCode}`, res.statusCode ?? 0));
            }
            resolve(Readable.toWeb(res) as ReadableStream<Uint8Array<ArrayBuffer>>);
          },
        )
        .on("error", reject);
    });
  }
}

export class RobotClient {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-director-client-"));
  readonly api: RobotApiHarness;
  readonly creds: RobotCredentials;
  constructor(api: RobotApiHarness, creds: RobotCredentials, trustedRoot: string) {
    this.api = api;
    this.creds = creds;
    fs.writeFileSync(path.join(this.dir, "root.json"), trustedRoot);
  }
  async refresh(): Promise<Updater> {
    const u = new Updater({
      metadataDir: this.dir,
      metadataBaseUrl: `${this.api.url}/robot/v1/director`,
      targetBaseUrl: `${this.api.url}/unused`,
      fetcher: new MutualTlsFetcher(this.creds, this.api.caPem),
      config: { prefixTargetsWithHash: false, fetchRetries: 0 },
    });
    await u.refresh();
    return u;
  }
  trusted(role: string): any {
    return JSON.parse(fs.readFileSync(path.join(this.dir, `${role}.json`), "utf8"));
  }
  /** What the director tells this robot's ECUs to run: target name per ECU serial. */
  async assignments(): Promise<Record<string, string>> {
    await this.refresh();
    const out: Record<string, string> = {};
    for (const [name, t] of Object.entries<any>(this.trusted("targets").signed.targets)) {
      for (const serial of Object.keys(t.custom.ecuIdentifiers)) out[serial] = name;
    }
    return out;
  }
  /** The robot's team's root `version`, as the robot API serves it. */
  async root(version: number): Promise<any> {
    return (await this.api.request(this.creds, "GET", `/robot/v1/director/${version}.root.json`)).body;
  }
  /** Keeps every root the client was given, for securesystemslib. */
  async saveRoots(upTo: number): Promise<void> {
    for (let v = 1; v <= upTo; v++) fs.writeFileSync(path.join(this.dir, `root-v${v}.json`), JSON.stringify(await this.root(v)));
  }
}

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "verify_director.py");

/** securesystemslib's verdict on what the robot's client trusts now (no-op without it). */
export function verifyWithSecuresystemslib(client: RobotClient, rootVersions: number): void {
  if (!needs("securesystemslib")) return;
  const roots = Array.from({ length: rootVersions }, (_, i) => fs.readFileSync(path.join(client.dir, `root-v${i + 1}.json`), "utf8"));
  const docs = Object.fromEntries(
    ["timestamp", "snapshot", "targets"].map((r) => [r, fs.readFileSync(path.join(client.dir, `${r}.json`), "utf8")]),
  );
  const canonical: Record<string, string> = {};
  for (const [r, text] of Object.entries(docs)) canonical[r] = canonicalize(JSON.parse(text).signed);
  roots.forEach((text, i) => {
    canonical[`root:${i + 1}`] = canonicalize(JSON.parse(text).signed);
  });
  const r = spawnSync("/usr/bin/python3", [SCRIPT], { input: JSON.stringify({ roots, ...docs, canonical }), encoding: "utf8" });
  const verdict = JSON.parse(r.stdout.trim() || `{"ok": false, "errors": [${JSON.stringify(r.stderr)}]}`);
  expect(verdict).toEqual({ ok: true, errors: [] });
}
