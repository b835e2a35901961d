// Several worker processes share one local CA through PostgreSQL: they initialise it at the
// same moment (one CA results), issue and revoke concurrently, and one SIGKILLed mid-way
// leaves nothing half-done. Checked with openssl against the CRL.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { SecretBox } from "../../src/lib/secrets.ts";
import { createTestDb } from "../helpers/db.ts";
import { verifyWithCrl } from "../helpers/openssl.ts";

const db = await createTestDb();
const masterKey = crypto.randomBytes(32);
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "local-ca-child.ts");

function worker(count: number) {
  const p = spawn(process.execPath, [child, db.url, "shared", String(count)], {
    env: { ...process.env, GK_TEST_MASTER_KEY: masterKey.toString("base64") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: any[] = [];
  let buf = "";
  let err = "";
  p.stdout!.on("data", (d) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  p.stderr!.on("data", (d) => (err += d));
  const done = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
  return { p, lines, done, stderr: () => err };
}

it("two processes initialise one CA, issue and revoke concurrently; a third is SIGKILLed mid-way", async () => {
  const a = worker(8);
  const b = worker(8);
  const victim = worker(0); // issues until killed
  while (victim.lines.length < 3) {
    if (victim.p.exitCode !== null) throw new Error(`victim exited early: ${victim.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  victim.p.kill("SIGKILL");
  expect(await a.done, a.stderr()).toBe(0);
  expect(await b.done, b.stderr()).toBe(0);
  await victim.done;

  const { rows } = await db.query("select count(*)::int as n from gk_private.local_ca_authorities where name = 'shared'");
  expect(rows[0].n).toBe(1);
  const ra = a.lines.at(-1);
  const rb = b.lines.at(-1);
  expect(ra.caPem).toBe(rb.caPem);
  // Everything the killed process was told was issued is there, complete.
  const victimSerials: string[] = victim.lines.map((l) => l.issued);
  const stored = await db.query("select serial, status, pem from gk_private.local_ca_certificates where authority = 'shared'");
  const bySerial = new Map(stored.rows.map((r) => [r.serial, r]));
  for (const s of victimSerials) expect(bySerial.get(s)?.status).toBe("issued");
  expect(stored.rows.every((r) => r.pem !== null)).toBe(true);

  const ca = new LocalCa(db.pool, new SecretBox(masterKey), { name: "shared" });
  await ca.refreshCrl();
  const crl = await ca.crlPem();
  for (const r of [ra, rb]) {
    for (const c of r.issued as { serial: string; pem: string }[]) {
      const out = verifyWithCrl(ra.caPem, crl, c.pem).out;
      if (r.revoked.includes(c.serial)) expect(out).toContain("certificate revoked");
      else expect(out).toContain(": OK");
    }
  }
});
