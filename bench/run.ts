// npm run bench [-- name]: runs the benchmarks one after the other (each prints its own ratios).
// Every bench/<area>.ts is a benchmark (helpers live in bench/lib/). Results are recorded by hand
// in docs/benchmarks.md with the machine they ran on.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const all = fs
  .readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")} (known: ${all.join(", ")})`);
  process.exit(1);
}
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench/${name}.ts`);
  const r = spawnSync(process.execPath, [path.join(here, `${name}.ts`)], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
