// A real worker process that drives the demo saga (demo-saga.ts): graphile-worker with the demo
// saga's task (it is no task of tasks/), configured from the environment. Tests SIGKILL it.
//   DATABASE_URL        the test database
//   GK_TEST_SAGA_HOLD   hang in this action (or undo:<step>) until killed
import { run } from "graphile-worker";
import { pino } from "pino";
import { createPool } from "../../../src/db/pool.ts";
import { quietWorkerLogger } from "../../../src/lib/log.ts";
import { demoSaga } from "./demo-saga.ts";

const pool = createPool(process.env.DATABASE_URL!, 6);
const runner = await run({
  pgPool: pool,
  concurrency: 2,
  noHandleSignals: true,
  pollInterval: 100,
  taskList: { [demoSaga.name]: demoSaga.task({ log: pino({ level: "silent" }) }) },
  logger: quietWorkerLogger(),
});
process.stdout.write("ready\n");
process.on("SIGTERM", () => void runner.stop().then(() => pool.end().then(() => process.exit(0))));
await runner.promise;
