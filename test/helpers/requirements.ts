// Tools from outside npm that some tests run: real servers and CLIs from Debian packages (cfssl,
// openssl, promtool, chromium, python3-securesystemslib, docker-compose). On a machine with only
// Node and npm the tests that need a missing tool are skipped and the run says so once (in
// test/helpers/global-setup.ts); `.ci/run` installs them and sets GK_TEST_REQUIRE=<tool,…>, which
// turns a missing tool into a failed run, so those tests cannot silently stop running there.
//
// In a test file:
//   import { needs } from "../helpers/requirements.ts";
//   describe.runIf(needs("cfssl"))("the cfssl adapter", () => { … });
// To add a tool: one entry in TOOLS (its Debian package and a command that succeeds when it
// works), the package in .ci/apt-packages, and its name in GK_TEST_REQUIRE in .ci/run.
import { spawnSync } from "node:child_process";
import { inject } from "vitest";

interface ToolSpec {
  /** The Debian package that brings it (what the skip note and the failure tell you to install). */
  debian: string;
  /** A command that exits 0 when the tool is installed and usable. */
  probe: readonly string[];
}

export const TOOLS = {
  cfssl: { debian: "golang-cfssl", probe: ["cfssl", "version"] },
  openssl: { debian: "openssl", probe: ["openssl", "version"] },
  promtool: { debian: "prometheus", probe: ["promtool", "--version"] },
  chromium: { debian: "chromium", probe: ["chromium", "--version"] },
  // Debian's module is installed for Debian's interpreter, which a pyenv or venv on PATH can hide.
  // Its ed25519 verification goes through python3-nacl (test/tuf/helpers/verify_tuf.py).
  securesystemslib: {
    debian: "python3-securesystemslib python3-nacl",
    probe: ["/usr/bin/python3", "-c", "import securesystemslib.signer, nacl.signing"],
  },
  "docker-compose": { debian: "docker-compose", probe: ["docker-compose", "version"] },
} as const satisfies Record<string, ToolSpec>;

export type Tool = keyof typeof TOOLS;
export type ToolAvailability = Record<Tool, boolean>;

declare module "vitest" {
  export interface ProvidedContext {
    tools: ToolAvailability;
  }
}

function isTool(name: string): name is Tool {
  return Object.hasOwn(TOOLS, name);
}

/** The tools GK_TEST_REQUIRE makes mandatory; an unknown name is an error (a typo must not pass). */
export function requiredTools(env: NodeJS.ProcessEnv = process.env): Tool[] {
  const names = (env.GK_TEST_REQUIRE ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !isTool(n));
  if (unknown.length)
    throw new Error(`GK_TEST_REQUIRE names unknown tools: ${unknown.join(", ")} (known: ${Object.keys(TOOLS).join(", ")})`);
  return names as Tool[];
}

export function probeTool(tool: Tool, env: NodeJS.ProcessEnv = process.env): boolean {
  const [cmd, ...args] = TOOLS[tool].probe;
  const r = spawnSync(cmd!, args, { stdio: "ignore", timeout: 20_000, env });
  return !r.error && r.status === 0;
}

/**
 * Once per run (global setup): which tools are here. Returns the one note to print about missing
 * ones; throws when a tool that GK_TEST_REQUIRE makes mandatory is missing.
 */
export function checkTools(env: NodeJS.ProcessEnv = process.env): { tools: ToolAvailability; note: string | null } {
  const required = requiredTools(env);
  const tools = Object.fromEntries((Object.keys(TOOLS) as Tool[]).map((t) => [t, probeTool(t, env)])) as ToolAvailability;
  const missing = (Object.keys(tools) as Tool[]).filter((t) => !tools[t]);
  const missingRequired = missing.filter((t) => required.includes(t));
  if (missingRequired.length) {
    throw new Error(
      `GK_TEST_REQUIRE needs ${missingRequired.join(", ")}, not installed here: apt-get install ${missingRequired.map((t) => TOOLS[t].debian).join(" ")}`,
    );
  }
  const note = missing.length
    ? `note: skipping the tests that need ${missing.join(", ")} (not installed; Debian packages: ${missing.map((t) => TOOLS[t].debian).join(" ")}; .ci/run installs them)`
    : null;
  return { tools, note };
}

/** In a test file: is the tool here? (A missing mandatory tool has already failed the run.) */
export function needs(tool: Tool): boolean {
  const available = inject("tools")[tool];
  if (!available && requiredTools().includes(tool)) {
    throw new Error(`${tool} is required by GK_TEST_REQUIRE but is not installed: apt-get install ${TOOLS[tool].debian}`);
  }
  return available;
}
