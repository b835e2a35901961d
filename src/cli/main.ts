// `groundskeeper` — the command-line entry point. The platform's commands live in
// src/cli/commands/ (listed in its index.ts); each area's come from its manifest (src/areas.ts).
process.env.GRAPHILE_ENV ??= "production"; // before PostGraphile is loaded by any command

// Before anything else is loaded: `groundskeeper --version` (package.json, git commit, Node).
if (process.argv[2] === "--version" || process.argv[2] === "-V") {
  const { versionLine } = await import("../server/build-info.ts");
  process.stdout.write(`${versionLine()}\n`);
  process.exit(0);
}

const { Command } = await import("commander");
const { commands } = await import("./commands/index.ts");
const { describeError, isCommanderExit } = await import("./errors.ts");

const program = new Command("groundskeeper")
  .description("Lifecycle engine of a robot-fleet update platform, driven by PostgreSQL.")
  .option("-v, --verbose", "debug logs, and stack traces for unexpected errors")
  .option("-V, --version", "print the version, git commit and Node version, and exit")
  .configureOutput({
    // Commander's own errors (unknown option, missing argument…) in our one-line format.
    outputError: (str, write) => write(`groundskeeper: ${str.replace(/^error: /, "").trim()} (see --help)\n`),
  })
  .exitOverride();
for (const register of commands) register(program);
// The areas' commands (and with them every area manifest of src/areas.ts) are loaded only when
// the command named is not a platform one: `token list` or `migrate` need none of them; `--help`,
// `help`, an area's command and an unknown name do.
const named = process.argv.slice(2).find((a) => !a.startsWith("-"));
if (!program.commands.some((c) => c.name() === named)) {
  const { areaCommands } = await import("../areas.ts");
  for (const register of areaCommands) register(program);
}

try {
  await program.parseAsync(process.argv);
  process.exit(process.exitCode ?? 0);
} catch (e) {
  if (isCommanderExit(e)) process.exit(e.exitCode); // help, version or a usage error already printed
  const verbose = process.argv.includes("--verbose") || process.argv.includes("-v") || Boolean(process.env.DEBUG);
  const known = describeError(e);
  if (known) {
    process.stderr.write(`groundskeeper: ${known}\n`);
    if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  } else if (verbose) {
    process.stderr.write(`groundskeeper: unexpected error\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  } else {
    process.stderr.write(`groundskeeper: ${e instanceof Error ? e.message : String(e)} (run with --verbose for details)\n`);
  }
  process.exit(1);
}
