// Child process for local-ca-processes.test.ts: one "worker" using the shared local CA.
// argv: <database url> <ca name> <count> ; env GK_TEST_MASTER_KEY (base64). Prints one JSON line
// per issued certificate, then a final summary line.
import { LocalCa } from "../../src/adapters/ca/local.ts";
import { createPool } from "../../src/db/pool.ts";
import { SecretBox } from "../../src/lib/secrets.ts";

const [url, name, countArg] = process.argv.slice(2);
const count = Number(countArg);
const pool = createPool(url!, 2);
const ca = new LocalCa(pool, new SecretBox(Buffer.from(process.env.GK_TEST_MASTER_KEY!, "base64")), { name: name!, crlDebounceMs: 0 });
const caPem = await ca.caCertificatePem();
const issued: { serial: string; pem: string }[] = [];
for (let i = 0; count === 0 || i < count; i++) {
  const r = await ca.issue({ commonName: `p${process.pid}-${i}`, profile: "robot", notAfter: new Date(Date.now() + 86400_000) });
  issued.push({ serial: r.serial!, pem: r.pem! });
  process.stdout.write(`${JSON.stringify({ issued: r.serial })}\n`);
}
const revoked = issued.filter((_, i) => i % 2 === 0).map((c) => c.serial);
await ca.revokeMany(revoked, "keyCompromise");
process.stdout.write(`${JSON.stringify({ caPem, issued, revoked })}\n`);
await pool.end();
