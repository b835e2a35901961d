// A worker logs one line per finished job at info (task, id, attempt, duration, outcome), never
// the payload (kilobytes for a batch) or a multi-line stack; the payload is there at debug.
import { describe, expect, it } from "vitest";
import { createPool } from "../src/db/pool.ts";
import { startWorker } from "../src/worker/runner.ts";
import { createTestDb } from "./helpers/db.ts";
import { jobs, testServices } from "./helpers/jobs.ts";
import { capturedLog } from "./helpers/log.ts";

const db = await createTestDb();

describe("job logs", () => {
  it("one compact line per job at info, the payload only at debug", async () => {
    const { log, lines } = capturedLog("debug");
    const big = "x".repeat(8000);
    await db.query(`select gk_private.enqueue('system__noop', jsonb_build_object('n', 1))`);
    // A malformed payload fails (permanently), with its 8 KB payload.
    await db.query(`select gk_private.enqueue('system__noop', jsonb_build_object('n', 2, 'pad', $1::text))`, [big]);
    const pgPool = createPool(db.url, 4);
    const runner = await startWorker({ databaseUrl: db.url, pgPool, services: testServices({ log }), cron: false, pollInterval: 100 });
    try {
      while ((await jobs(db, "system__noop")).some((j) => j.attempts === 0)) await new Promise((r) => setTimeout(r, 50));
      while (!lines.some((l) => l.job?.outcome === "failed")) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await runner.stop();
      await pgPool.end();
    }
    const info = lines.filter((l) => l.level >= 30);
    for (const l of info) {
      expect(JSON.stringify(l)).not.toContain(big.slice(0, 100));
      expect(l.msg).not.toContain("\n");
    }
    const done = info.filter((l) => l.job?.outcome);
    expect(done.map((l) => [l.level, l.job.task, l.job.outcome])).toEqual(
      expect.arrayContaining([
        [30, "system__noop", "succeeded"],
        [50, "system__noop", "failed"],
      ]),
    );
    const ok = done.find((l) => l.job.outcome === "succeeded");
    expect(Object.keys(ok.job).sort()).toEqual(["attempt", "durationMs", "id", "maxAttempts", "outcome", "task"]);
    const failed = done.find((l) => l.job.outcome === "failed");
    expect(failed.job.error).toMatch(/invalid payload for system__noop/);
    expect(failed.err.stack).toContain("InvalidPayloadError");
    const debug = lines.filter((l) => l.level === 20 && l.msg === "job payload");
    expect(debug.some((l) => l.job.payload.pad === big)).toBe(true);
  });
});
