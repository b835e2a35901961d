// Loaded with `node --import` into a spawned CLI by test/cli-lazy.test.ts: records the URL of
// every module the process loads (ESM and CommonJS alike go through these hooks) and writes them,
// one a line, to RECORD_MODULES_OUT when the process exits.
import fs from "node:fs";
import { registerHooks } from "node:module";

const out = process.env.RECORD_MODULES_OUT;
const seen: string[] = [];
registerHooks({
  load(url, context, next) {
    seen.push(url);
    return next(url, context);
  },
});
if (out) process.on("exit", () => fs.writeFileSync(out, `${seen.join("\n")}\n`));
