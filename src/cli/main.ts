// `groundskeeper` — the command-line entry point. Commands live in src/cli/commands/, one file
// each, registered from the list in src/cli/commands/index.ts.
process.env.GRAPHILE_ENV ??= "production"; // before PostGraphile is loaded by any command

const { Command } = await import("commander");
const { commands } = await import("./commands/index.ts");
const { describeError, isCommanderExit } = await import("./errors.ts");

const program = new Command("groundskeeper")
  .description("Lifecycle engine of a robot-fleet update platform, driven by PostgreSQL.")
  .option("-v, --verbose", "debug logs, and stack traces for unexpected errors")
  .configureOutput({
    // Commander's own errors (unknown option, missing argument…) in our one-line format.
    outputError: (str, write) => write(`groundskeeper: ${str.replace(/^error: /, "").trim()} (see --help)\n`),
  })
  .exitOverride();
for (const register of commands) register(program);

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
