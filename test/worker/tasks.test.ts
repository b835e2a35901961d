import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { jobs, runJobs } from "../helpers/jobs.ts";

const db = await createTestDb();

describe("job runner", () => {
  it("enqueues in bulk from SQL with one add_jobs call and runs the jobs", async () => {
    await db.query(
      `select gk_private.enqueue_many('system__noop', array(select jsonb_build_object('n', i) from generate_series(1, 500) i))`,
    );
    expect((await jobs(db, "system__noop")).length).toBe(500);
    await runJobs(db);
    expect(await jobs(db, "system__noop")).toEqual([]);
  });

  it("fails a malformed payload permanently with a clear error and keeps running other jobs", async () => {
    await db.query(`select gk_private.enqueue('system__noop', '{"n": "not a number"}')`);
    await db.query(`select gk_private.enqueue('system__noop', '{"n": 1}')`);
    await runJobs(db);
    const left = await jobs(db, "system__noop");
    expect(left).toHaveLength(1);
    expect(left[0].attempts).toBe(left[0].max_attempts);
    expect(left[0].last_error).toMatch(/invalid payload for system__noop: n: .*number/);
  });

  it("debounces with a job key: many enqueues, one job", async () => {
    for (let i = 0; i < 5; i++)
      await db.query(`select gk_private.enqueue('system__noop', '{}', job_key := 'k1', run_at := now() + interval '1 hour')`);
    expect((await jobs(db, "system__noop")).filter((j) => j.last_error == null)).toHaveLength(1);
  });
});
