// A separate worker process for the killed-worker test: the real runner with the real task list
// and a SecretBox under the master key given on the command line (the director keys are sealed
// with it). Usage: node sweep-worker.ts <db-url> <master key, base64>
import { pino } from "pino";
import { SecretBox } from "../../../src/lib/secrets.ts";
import { startWorker } from "../../../src/worker/runner.ts";

const [databaseUrl, masterKey] = process.argv.slice(2);
const log = pino({ level: "silent" });
const runner = await startWorker({
  databaseUrl,
  services: { log, secrets: new SecretBox(Buffer.from(masterKey, "base64")) },
  cron: false,
  concurrency: 2,
  pollInterval: 50,
});
console.log("worker ready");
await runner.promise;
