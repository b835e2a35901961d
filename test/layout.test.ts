// The platform's wiring rules, checked on the source tree: no import cycles (value or type
// imports), framework code (src/{cli,server,worker,db,lib}) imports no area, and every area
// folder has a manifest that src/areas.ts lists.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { areas } from "../src/areas.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const src = path.join(root, "src");
const FRAMEWORK = ["cli", "server", "worker", "db", "lib", "peers"];
const NOT_AREAS = [...FRAMEWORK, "adapters"];

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** Relative imports of a file (`import … from`, `export … from`, bare `import "…"`, `import("…")`). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/g),
    ...text.matchAll(/(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g),
    ...text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]);
  return specs.map((s) => path.resolve(path.dirname(file), s)).filter((t) => fs.existsSync(t));
}

const files = [...tsFiles(src), ...tsFiles(path.join(root, "tasks"))];
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const rel = (f: string) => path.relative(root, f);
const areaDirs = fs
  .readdirSync(src, { withFileTypes: true })
  .filter((e) => e.isDirectory() && !NOT_AREAS.includes(e.name))
  .map((e) => e.name);

describe("source layout", () => {
  it("has no import cycles", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, "open");
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (!graph.has(t)) continue;
        if (state.get(t) === "open") cycles.push(stack.slice(stack.indexOf(t)).concat(t).map(rel).join(" -> "));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, "done");
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it("framework code names no area", () => {
    const leaks: string[] = [];
    for (const [f, targets] of graph) {
      const top = path.relative(src, f).split(path.sep)[0];
      if (!FRAMEWORK.includes(top)) continue;
      for (const t of targets) {
        const area = path.relative(src, t).split(path.sep)[0];
        if (areaDirs.includes(area)) leaks.push(`${rel(f)} -> ${rel(t)}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it("every area folder has a manifest listed in src/areas.ts, under its own key", () => {
    expect(areaDirs.filter((d) => !fs.existsSync(path.join(src, d, "index.ts")))).toEqual([]);
    expect(areas.map((a) => a.key).sort()).toEqual([...areaDirs].sort());
  });

  it("tasks are named <area>__<verb>", () => {
    const bad = fs.readdirSync(path.join(root, "tasks")).filter((f) => f.endsWith(".ts") && !/^[a-z]+__[a-z_]+\.ts$/.test(f));
    expect(bad).toEqual([]);
  });
});
