// TUF repository benchmark, side by side in one run:
//  1. bootstrap with 16,384 bins (sign + store every role; then upload every file);
//  2. 100,000 targets added in batches of 1,000 (SQL function, one statement each) with a real
//     worker publishing as they come, until everything is signed and uploaded: targets/s;
//  3. publish time for one changed target in a 100,000-target repository vs a 10-target one
//     (both 256 bins): the ratio should be close to 1.
//  Beside the bootstrap, the bare cost of the same signing: Node's ed25519 alone, and
//  securesystemslib (python3-securesystemslib, Debian) canonicalising and signing as many bins.
// Usage: node bench/tuf.ts [targets=100000] [bootstrapBins=16384]; BENCH_SCALE scales targets;
// BENCH_PART=changed runs only part 3 (repositories loaded by one INSERT instead of part 2);
// BENCH_PART=bootstrap only part 1.
// DATABASE_URL = a server to create a scratch database on (default the local one on 5432; an
// embedded PostgreSQL when that is unreachable). Blobs go to a temporary filesystem store.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { FsBlobStore } from "../src/adapters/blobs/fs.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";
import { createPool } from "../src/db/pool.ts";
import { SecretBox } from "../src/lib/secrets.ts";
import { fromPool } from "../src/tuf/db.ts";
import { initRepository } from "../src/tuf/init.ts";
import { binOfPath } from "../src/tuf/bins.ts";
import { binCanonical } from "../src/tuf/metadata.ts";
import { signDirty, uploadPending } from "../src/tuf/publish.ts";
import { startWorker } from "../src/worker/runner.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
// BENCH_SCALE=0.1: a quick run with 10,000 targets (the bootstrap keeps its bin count).
const TARGETS = Math.max(1000, Math.round(Number(process.argv[2] ?? 100_000) * Number(process.env.BENCH_SCALE ?? 1)));
const BOOT_BINS = Number(process.argv[3] ?? 16_384);
const BATCH = 1000;
const now = () => performance.now();

const scratch = await scratchDatabase();
const url = scratch.url;
const pool = createPool(url, 10);
const db = fromPool(pool);
process.env.GK_MASTER_KEY ??= crypto.randomBytes(32).toString("base64");
const box = new SecretBox(Buffer.from(process.env.GK_MASTER_KEY, "base64"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gk-bench-tuf-"));
const blobs = new FsBlobStore(path.join(tmp, "blobs"));

function target(prefix: string, i: number) {
  return {
    path: `${prefix}/${i % 97}/artifact-${i}.bin`,
    length: 1_000_000 + i,
    hashes: { sha256: crypto.createHash("sha256").update(`${prefix}${i}`).digest("hex") },
  };
}

async function newTeam(name: string, bins: number, publishDelay = "1 second") {
  await pool.query("insert into gk_public.teams (name) values ($1)", [name]);
  const r = await initRepository(db, box, {
    team: name,
    keysDir: path.join(tmp, "keys", name),
    keys: 3,
    threshold: 2,
    bins,
    lifetimes: { publishDelay },
  });
  await pool.query("delete from graphile_worker._private_jobs"); // the benchmark drives publishing itself
  return r.teamId;
}

try {
  // 1. Bootstrap with 16,384 bins (skipped with BENCH_PART=changed; alone with BENCH_PART=bootstrap).
  if (process.env.BENCH_PART !== "changed") await bootstrap();
  if (process.env.BENCH_PART !== "bootstrap") await targetsAndChanged();
  async function bootstrap() {
    let t0 = now();
    const bootTeam = await newTeam("boot", BOOT_BINS);
    const tInit = now() - t0;
    t0 = now();
    const signed = await signDirty(db, box, bootTeam);
    const tSign = now() - t0;
    t0 = now();
    const up = await uploadPending(db, blobs, bootTeam, 32);
    const tUpload = now() - t0;
    console.log(
      `${BOOT_BINS} bins: init ${(tInit / 1000).toFixed(2)} s, sign+store ${signed.documents} documents ${(tSign / 1000).toFixed(2)} s, upload ${up.uploaded} files ${(tUpload / 1000).toFixed(2)} s, total ${((tInit + tSign + tUpload) / 1000).toFixed(2)} s`,
    );
    // The same work done bare, in the same run: Node's ed25519 signing of as many bin documents
    // (no canonicalisation, no database), and securesystemslib canonicalising and signing them in
    // memory (what python-tuf and RSTUF sign with; bench/lib/tuf_peer.py). Three rounds, each a
    // fresh repository's sign+store next to both, so the medians see the same machine load.
    // Empty bins are identical documents (signed once: ed25519 is deterministic), so the same is
    // measured with distinct documents too: every bin holding one target, all re-signed.
    const distinctTeam = await oneTargetPerBin("distinct", BOOT_BINS);
    const distinctBodies = (
      await pool.query<{ document: string }>(
        "select document from gk_public.tuf_metadata where team_id = $1 and role like 'bins-%' order by role",
        [distinctTeam],
      )
    ).rows.map((r) => r.document.slice(r.document.indexOf(',"signed":') + 10, -1));
    const documentsFile = path.join(tmp, "distinct.jsonl");
    fs.writeFileSync(documentsFile, `${distinctBodies.join("\n")}\n`);
    const key = crypto.generateKeyPairSync("ed25519").privateKey;
    const expires = new Date(Date.now() + 30 * 86_400_000);
    const emptyBodies = Array.from({ length: BOOT_BINS }, () => Buffer.from(binCanonical(1, expires, "")));
    const distinctBuffers = distinctBodies.map((b) => Buffer.from(b));
    const m = {
      ours: [tSign],
      bare: [] as number[],
      peer: [] as number[],
      oursD: [] as number[],
      bareD: [] as number[],
      peerD: [] as number[],
    };
    let peerError: string | null = null;
    const peerRun = (file?: string) => {
      const p = spawnSync("/usr/bin/python3", [path.join(here, "lib/tuf_peer.py"), String(BOOT_BINS), ...(file ? [file] : [])], {
        encoding: "utf8",
      });
      if (p.status === 0) return JSON.parse(p.stdout).seconds * 1000;
      peerError = `${p.error?.message ?? p.stderr.trim().split("\n").pop()}; apt-get install python3-securesystemslib python3-nacl`;
      return Number.NaN;
    };
    const bareRun = (bodies: Buffer[]) => {
      const s = now();
      for (const b of bodies) crypto.sign(null, b, key);
      return now() - s;
    };
    for (let round = 0; round < 3; round++) {
      if (round > 0) {
        const team = await newTeam(`boot${round}`, BOOT_BINS);
        const s = now();
        await signDirty(db, box, team);
        m.ours.push(now() - s);
      }
      m.bare.push(bareRun(emptyBodies));
      m.peer.push(peerRun());
      await pool.query(
        "update gk_public.tuf_roles set dirty = true, dirty_since = now(), dirty_generation = dirty_generation + 1 where team_id = $1",
        [distinctTeam],
      );
      const s = now();
      await signDirty(db, box, distinctTeam);
      m.oursD.push(now() - s);
      m.bareD.push(bareRun(distinctBuffers));
      m.peerD.push(peerRun(documentsFile));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const report = (what: string, ours: number[], bare: number[], peer: number[]) =>
      console.log(
        `${BOOT_BINS} ${what}, median of 3 rounds: our sign+store ${secs(med(ours))} (${ours.map(secs).join(", ")}), Node bare ed25519 ${secs(med(bare))}, securesystemslib canonicalise+sign ${peerError ? `unavailable (${peerError})` : `${secs(med(peer))} (${peer.map(secs).join(", ")})`}; ours = ${(med(ours) / med(bare)).toFixed(2)}× Node bare${peerError ? "" : `, ${(med(ours) / med(peer)).toFixed(2)}× securesystemslib`}`,
      );
    report("empty bin documents (bootstrap)", m.ours, m.bare, m.peer);
    report("distinct bin documents (one target each, all re-signed)", m.oursD, m.bareD, m.peerD);
  }

  /** A published repository whose every bin holds exactly one target. */
  async function oneTargetPerBin(name: string, bins: number) {
    const team = await newTeam(name, bins);
    const bitLength = Math.log2(bins);
    const byBin = new Map<number, string>();
    for (let i = 0; byBin.size < bins; i++) {
      const p = `${name}/${i}.bin`;
      const b = binOfPath(p, bitLength);
      if (!byBin.has(b)) byBin.set(b, p);
    }
    await pool.query(
      `insert into gk_public.tuf_targets (team_id, path, length, hashes)
       select $1, p, 1000 + length(p), jsonb_build_object('sha256', encode(sha256(p::bytea), 'hex')) from unnest($2::text[]) p`,
      [team, [...byBin.values()]],
    );
    await signDirty(db, box, team);
    return team;
  }

  async function targetsAndChanged() {
    // 2. TARGETS targets in batches of 1,000 with a worker publishing concurrently: with the
    // default publish_delay (a publish per second while writes flow) and with a bulk-import one.
    const bulk = async (name: string, bins: number, publishDelay: string) => {
      const team = await newTeam(name, bins, publishDelay);
      const worker = await startWorker({
        databaseUrl: url,
        services: { log: pino({ level: "warn" }), blobs },
        cron: false,
        concurrency: 2,
        pollInterval: 100,
      });
      const t0 = now();
      const writer = await pool.connect();
      for (let b = 0; b < TARGETS / BATCH; b++) {
        const batch = Array.from({ length: BATCH }, (_, i) => target(name, b * BATCH + i));
        await writer.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [team, JSON.stringify(batch)]);
      }
      writer.release();
      const tWrite = now() - t0;
      for (;;) {
        const { rows } = await pool.query(
          `select (select count(*) from graphile_worker._private_jobs)::int as jobs,
                (select count(*) from gk_public.tuf_roles where team_id = $1 and dirty)::int as dirty,
                (select count(*) from gk_public.tuf_metadata where team_id = $1 and uploaded_at is null)::int as pending`,
          [team],
        );
        if (rows[0].jobs + rows[0].dirty + rows[0].pending === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const tAll = now() - t0;
      await worker.stop();
      await worker.promise.catch(() => {});
      const publishes = (
        await pool.query("select max(version) as v from gk_public.tuf_metadata where team_id = $1 and role = 'snapshot'", [team])
      ).rows[0].v;
      // The repository was created unpublished here, so snapshot version = number of publishes.
      const line = `${TARGETS} targets in batches of ${BATCH}, ${bins} bins, publish_delay ${publishDelay}: written in ${(tWrite / 1000).toFixed(2)} s, all signed and uploaded after ${(tAll / 1000).toFixed(2)} s = ${Math.round(TARGETS / (tAll / 1000))} targets/s (${publishes} publishes)`;
      console.log(line);
      return { team, line };
    };
    // BENCH_PART=changed: only part 3, the big repositories loaded by one INSERT and one publish.
    const loaded = async (name: string, bins: number) => {
      const team = await newTeam(name, bins);
      await pool.query(
        `insert into gk_public.tuf_targets (team_id, path, length, hashes)
       select $1, $2 || '/' || (i % 97) || '/artifact-' || i || '.bin', 1000000 + i, jsonb_build_object('sha256', encode(sha256(($2 || i)::bytea), 'hex'))
         from generate_series(0, $3 - 1) i`,
        [team, name, TARGETS],
      );
      await signDirty(db, box, team);
      await uploadPending(db, blobs, team, 32);
      return { team };
    };
    const changedOnly = process.env.BENCH_PART === "changed";
    const b1 = changedOnly ? await loaded("bulk", 256) : await bulk("bulk", 256, "1 second");
    const b4096 = changedOnly ? await loaded("bulk4096", 4096) : await bulk("bulk4096", 4096, "1 second");
    if (!changedOnly) await bulk("bulk10", 256, "10 seconds");
    const bulkTeam = b1.team;

    // 3. One changed target: big (a bulk repository) vs small (10 targets), alternated, for 256
    // bins (~390 targets per bin when big) and 4,096 bins (~24 per bin).
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const compare = async (bigTeam: string, bins: number) => {
      const smallTeam = await newTeam(`small${bins}`, bins);
      await pool.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [
        smallTeam,
        JSON.stringify(Array.from({ length: 10 }, (_, i) => target(`small${bins}`, i))),
      ]);
      await signDirty(db, box, smallTeam);
      await uploadPending(db, blobs, smallTeam);
      const timeOne = async (team: string, i: number) => {
        await pool.query("select gk_public.tuf_add_targets($1, $2::jsonb)", [team, JSON.stringify([target(`one-${team}`, i)])]);
        const s = now();
        const r = await signDirty(db, box, team);
        await uploadPending(db, blobs, team);
        if (r.bins !== 1) throw new Error(`expected 1 dirty bin, got ${r.bins}`);
        return now() - s;
      };
      const big: number[] = [];
      const small: number[] = [];
      for (let i = 0; i < 3; i++) {
        await timeOne(bigTeam, 1000 + i); // warm-up
        await timeOne(smallTeam, 1000 + i);
      }
      for (let i = 0; i < 30; i++) {
        big.push(await timeOne(bigTeam, i));
        small.push(await timeOne(smallTeam, i));
      }
      const count = async (t: string) =>
        (await pool.query("select count(*)::int as n from gk_public.tuf_targets where team_id = $1", [t])).rows[0].n;
      console.log(
        `one changed target, ${bins} bins, median of 30: ${await count(bigTeam)}-target repo ${median(big).toFixed(1)} ms vs ${await count(smallTeam)}-target repo ${median(small).toFixed(1)} ms, ratio ${(median(big) / median(small)).toFixed(2)}`,
      );
    };
    await compare(bulkTeam, 256);
    await compare(b4096.team, 4096);
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${(await pool.query("show server_version")).rows[0].server_version}`,
    );
  }
} finally {
  await pool.end();
  await scratch.drop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
