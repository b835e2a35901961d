// A separate worker process for the concurrency test: the real runner (graphile-worker) with
// the real task list and a filesystem blob store. Usage: node worker-process.ts <db-url> <blobs-dir> <name>
import { pino } from "pino";
import { FsBlobStore } from "../../../src/adapters/blobs/fs.ts";
import { startWorker } from "../../../src/worker/runner.ts";

const [databaseUrl, blobsDir, name] = process.argv.slice(2);
const log = pino({ level: "info", base: { proc: name } });
const runner = await startWorker({
  databaseUrl,
  services: { log, blobs: new FsBlobStore(blobsDir) },
  cron: false,
  concurrency: 4,
  pollInterval: 50,
});
runner.events.on("job:start", ({ job }) => log.info({ task: job.task_identifier }, "job start"));
process.on("SIGTERM", () => {
  runner.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
log.info("worker ready");
await runner.promise;
