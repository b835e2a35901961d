// A replacement issued while a newer change marks its robot again leaves the robot dirty
// (sql/630_robots_certificates.sql, tg_certificates__robot_regenerated): the issue reads the robot
// in its statement's snapshot, then waits for the marking's row lock, and must re-check the
// generation on the row it finally updates, not clear the newer mark.
import { expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { insertCertificates, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { waitFor } from "../helpers/wait.ts";

const db = await createTestDb();

it("an issue racing a newer marking of its robot leaves the robot dirty", async () => {
  const team = await insertTeam(db);
  const [robot] = await insertRobots(db, { team });
  await insertCertificates(db, { robots: [robot!], publicKeyPem: "fixture robot key" });
  await db.query("update gk_public.robots set name = name || '-v1' where id = $1", [robot!.id]);
  const { rows } = await db.query("select certificate_id from gk_private.robots_certificate_replacements(array[$1::uuid])", [robot!.id]);
  const replacement = rows[0].certificate_id;
  await db.query("select * from gk_private.certificate_claim_issue($1, gen_random_uuid(), '1 minute'::interval, false)", [replacement]);
  const claim = (await db.query("select claim_id from gk_public.certificates where id = $1", [replacement])).rows[0].claim_id;

  const marking = await db.pool.connect();
  try {
    await marking.query("begin");
    await marking.query("update gk_public.robots set name = name || '-v2' where id = $1", [robot!.id]);
    // The issue waits for the marking's lock on the robot row, having read the robot before it.
    const issued = db.query(
      "select gk_private.certificate_issued($1, $2, 'fixture-ca:race', 'ab12cd34', 'fixture pem', now(), null, null) as s",
      [replacement, claim],
    );
    await waitFor(async () => {
      const { rows: waiting } = await db.query(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%certificate_issued%'",
      );
      return waiting[0].n === 1;
    });
    await marking.query("commit");
    expect((await issued).rows[0].s).toBe("issued");
  } finally {
    await marking.query("rollback"); // after a failure: the marking's lock goes with it
    marking.release();
  }
  const { rows: after } = await db.query(
    "select certificate_dirty_since is not null as dirty, certificate_generation::int as g from gk_public.robots where id = $1",
    [robot!.id],
  );
  const subject = await db.query("select subject_generation::int as g from gk_public.certificates where id = $1", [replacement]);
  expect(after[0]).toEqual({ dirty: true, g: subject.rows[0].g + 1 });
});
