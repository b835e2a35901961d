// CLI start-up: the wall time of one `groundskeeper` spawn per command against a bare Node start
// (`node -e 0`), measured side by side, interleaved, in one run. Every command is registered at
// start-up (src/cli/main.ts), so what the modules it reaches load at their top is paid by every
// spawn: by operators in every `status`, and by the tests, which spawn the CLI hundreds of times.
// `node bench/cli.ts` (BENCH_SCALE multiplies the 20 spawns per command).
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { scaled } from "./lib/scale.ts";
import { scratchDatabase } from "./lib/scratch-db.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "src/cli/main.ts");
const runs = scaled(20, 3);

const scratch = await scratchDatabase();
try {
  const env = { ...process.env, DATABASE_URL: scratch.url, LOG_LEVEL: "warn" };
  const cases: [string, string[]][] = [
    ["node -e 0 (bare)", ["-e", "0"]],
    ["--version", [cli, "--version"]],
    ["--help", [cli, "--help"]],
    ["status --json", [cli, "status", "--json"]],
    ["token list", [cli, "token", "list"]],
  ];
  const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of cases) {
      const t = process.hrtime.bigint();
      const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: ["ignore", "ignore", "pipe"] });
      if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
      times.get(name)!.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const bare = median(times.get(cases[0]![0])!);
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  console.log(`${runs} spawns each, interleaved; database: ${scratch.where}; load average ${load}`);
  console.log("| command | median wall | × bare node |\n|---|---|---|");
  for (const [name] of cases) {
    const m = median(times.get(name)!);
    console.log(`| ${name} | ${m.toFixed(0)} ms | ${(m / bare).toFixed(1)}× |`);
  }
} finally {
  await scratch.drop();
}
