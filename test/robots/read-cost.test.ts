// A robot's certificate read (and the issuance and hand-over of its replacement), the robot API's
// per-request certificate check, a manifest and the certificate sweep's batch touch the rows of
// their own robots, never every robot a bulk change marked, however stale the planner's
// statistics: right after a team rename marks every robot of the team dirty in one statement
// (sql/630_robots_certificates.sql), the statistics of gk_public.robots still say no robot is
// dirty (autovacuum analyzes later, or never when the team is under 10% of the table), and a plan
// chosen on them must still reach each robot by its key; so must a join to a set-returning
// function, planned on its default estimate (1,000 rows, 100 for jsonb_to_recordset) whatever the
// statistics. The rows each statement reads are the backend's own counts
// (test/helpers/rows-read.ts).
import type { PoolClient } from "pg";
import { describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { rowsReadBy } from "../helpers/rows-read.ts";
import { insertCertificates, insertEcus, insertImages, insertRobots, insertRollout, insertTeam } from "../helpers/fixtures/index.ts";

const TABLES = [
  "gk_public.robots",
  "gk_public.certificates",
  "gk_public.ecus",
  "gk_public.rollout_robots",
  "gk_public.ecu_version_reports",
  "gk_public.robot_manifests",
  "gk_public.images",
];
// Per robot a few dozen rows at most in each table: its robot row, its current certificate, the
// one it replaced and its replacement, its ECU, its rollout row, its images, and the index
// entries that lead to them, read again by each trigger and foreign key check of the statement
// (a replacement's request reads up to 38 index and heap rows of gk_public.robots for its robot).
const PER_ROBOT = 50;

// What the robot presents in the TLS handshake: the fixture's certificates all carry these bytes
// (robot_presented compares them with the stored PEM; the serial picks the row).
const DER = Buffer.from("fixture robot certificate");
const PEM = `-----BEGIN CERTIFICATE-----\n${DER.toString("base64")}\n-----END CERTIFICATE-----\n`;

type Step = [name: string, run: (c: PoolClient) => Promise<unknown>];

/** Runs the steps in one transaction; the rows each read, per table; then rolls back. */
async function touched(c: PoolClient, steps: Step[]): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  try {
    await c.query("begin");
    for (const [name, run] of steps) out[name] = await rowsReadBy(c, TABLES, () => run(c));
    return out;
  } finally {
    await c.query("rollback");
  }
}

/** `work` on one connection of the fleet's pool, so that plpgsql's cached plans carry over between calls. */
async function onOneConnection(db: TestDb, work: (c: PoolClient) => Promise<void>): Promise<void> {
  const c = await db.pool.connect();
  try {
    await work(c);
  } finally {
    c.release();
  }
}

function expectFew(n: Record<string, Record<string, number>>, robots: number, what: string) {
  for (const [step, tables] of Object.entries(n)) {
    for (const t of TABLES) expect.soft(tables[t], `${t} rows read by ${step} (${what})`).toBeLessThanOrEqual(PER_ROBOT * robots);
  }
}

/**
 * A fleet renamed a second time, with statistics from before the rename: each robot has an ECU, a
 * current certificate that replaced an earlier one (so certificates_one_replacement_idx holds one
 * entry per robot), and is dirty since the rename. A reporting fleet (for the manifests) also has
 * each ECU's last accepted version report, and a launch of a hardware-id rollout came with the rename.
 */
async function staleRename(size: number, reporting: boolean) {
  const db = await createTestDb();
  const team = await insertTeam(db);
  const robots = await insertRobots(db, { team, count: size });
  // A reporting fleet's team has a catalog of images, one of which its ECUs run.
  const images = await insertImages(db, { team, hardwareIds: ["hw-a"], count: reporting ? 2000 : 1 });
  const image = images[0];
  await insertEcus(db, { robots, hardwareId: "hw-a", ...(reporting ? { installedImage: images.at(-1) } : {}) });
  // Each ECU's last accepted version report, as a fleet that reports has (for the manifests).
  if (reporting)
    await db.query(
      `insert into gk_public.ecu_version_reports (ecu_id, team_id, report_counter, reported_at, reported_filepath, reported_length,
                                                reported_sha256, verdict, detail)
     select e.id, e.team_id, 1, now() - interval '1 hour', 'other-1.0', 1, repeat('0', 64), 'discrepancy', 'fixture'
       from gk_public.ecus e where e.team_id = $1`,
      [team.id],
    );
  const earlier = await insertCertificates(db, { robots, state: "revoked", revocationReason: "superseded" });
  const certs = await insertCertificates(db, { robots, pem: PEM, publicKeyPem: "fixture robot key" });
  await db.query(
    "update gk_public.certificates c set replaces_certificate_id = e.id from unnest($1::uuid[], $2::uuid[]) e (id, cur) where c.id = e.cur",
    [earlier.map((c) => c.id), certs.map((c) => c.id)],
  );
  await db.query("analyze");
  await db.query("update gk_public.teams set name = name || '-renamed' where id = $1", [team.id]);
  if (reporting) await insertRollout(db, { team, images: [{ hardwareId: "hw-a", image }], state: "launched" });
  return { db, team, robots, certs, image };
}

// 5,000 dirty robots: the plans that scanned every dirty robot were chosen at that size, and a
// batch of 10 is small enough in it that with fresh statistics every right plan is by key (on a
// small table, or for a large share of it, a sequential scan is the planner's right choice).
// (Larger fleets are slow to build: the fixture inserts certificates at ~1 ms each.)
const small = await staleRename(5000, true);
const BATCH = 10;

describe("certificate and robot API read cost follows the robot, with statistics taken before a bulk rename", () => {
  it("a dirty robot's certificate read, the replacement's issuance and hand-over read a few rows per table", async () => {
    // Eight reads on one connection: past plpgsql's first five custom plans, onto its generic one.
    await onOneConnection(small.db, async (conn) => {
      for (const [i, robot] of small.robots.slice(0, 8).entries()) {
        const { serial } = small.certs[i];
        let replacement = "";
        const current = (c: PoolClient) =>
          // src/robots/certificate.ts current().
          c.query(
            `select c.id, c.subject_generation < r.certificate_generation and r.certificate_dirty_since is not null as dirty
             from gk_private.robot_presented_current_certificate($1, $2) c join gk_public.robots r on r.id = c.robot_id`,
            [serial, DER],
          );
        const n = await touched(conn, [
          // The robot API's check of every request (src/peers/robot-api.ts authenticateRobot).
          ["robot_presented", (c) => c.query("select * from gk_private.robot_presented($1, $2)", [serial, DER])],
          ["the current certificate", async (c) => expect((await current(c)).rows).toEqual([{ id: small.certs[i].id, dirty: true }])],
          ["the robot's lock", (c) => c.query("select 1 from gk_public.robots where id = $1 for update", [robot.id])],
          [
            "robots_certificate_replacements",
            async (c) => {
              const { rows } = await c.query(
                "select certificate_id, requested from gk_private.robots_certificate_replacements(array[$1::uuid], array[null::text])",
                [robot.id],
              );
              expect(rows).toEqual([{ certificate_id: expect.any(String), requested: true }]);
              replacement = rows[0].certificate_id;
            },
          ],
          [
            "the wait for its issue",
            (c) => c.query("select * from gk_private.robot_presented_certificate($1, $2, $3)", [serial, DER, replacement]),
          ],
          // certificates__issue: the claim, then the CA's answer recorded.
          [
            "certificate_claim_issue",
            (c) =>
              c.query("select * from gk_private.certificate_claim_issue($1, gen_random_uuid(), '1 minute'::interval, false)", [
                replacement,
              ]),
          ],
          [
            "certificate_issued",
            async (c) => {
              const { rows } = await c.query(
                `select gk_private.certificate_issued(c.id, c.claim_id, 'fixture-ca:' || c.id, md5(c.id::text), $2, now(), null, null) as s
                 from gk_public.certificates c where c.id = $1`,
                [replacement, PEM],
              );
              expect(rows[0].s).toBe("issued");
            },
          ],
          ["the current certificate again", current],
          [
            "robot_presented_download",
            (c) => c.query("select gk_private.robot_presented_download($1, $2, $3)", [serial, DER, replacement]),
          ],
        ]);
        expectFew(n, 1, `read ${i + 1}`);
      }
    });
  });

  it("a manifest's statements (robot_ecu_keys, then robot_manifest_accepted) read a few rows per table", async () => {
    await onOneConnection(small.db, async (conn) => {
      for (const robot of small.robots.slice(100, 108)) {
        const n = await touched(conn, [
          ["robot_ecu_keys", (c) => c.query("select * from gk_private.robot_ecu_keys($1)", [robot.id])],
          [
            "robot_manifest_accepted",
            async (c) => {
              const ecu = (await c.query("select serial from gk_public.ecus where robot_id = $1", [robot.id])).rows[0].serial;
              const reports = [
                { serial: ecu, counter: 2, time: null, filepath: "other-1.0", length: 1, sha256: "0".repeat(64), sha512: null },
              ];
              const { rows } = await c.query("select gk_private.robot_manifest_accepted($1, $2, '{}'::jsonb, $3::jsonb) as m", [
                robot.id,
                small.team.id,
                JSON.stringify(reports),
              ]);
              expect(rows[0].m.ecus).toMatchObject([{ serial: ecu, verdict: "discrepancy" }]);
            },
          ],
        ]);
        expectFew(n, 1, "a manifest");
      }
    });
  });

  it(`a sweep batch of ${BATCH} robots (robots_certificates_due, then robots_certificate_replacements) reads a few rows per robot`, async () => {
    let due: string[] = [];
    let n: Record<string, Record<string, number>> = {};
    await onOneConnection(small.db, async (conn) => {
      n = await touched(conn, [
        [
          "robots_certificates_due",
          async (c) => {
            const { rows } = await c.query("select robot_id, has_key from gk_private.robots_certificates_due($1)", [BATCH]);
            expect(rows).toHaveLength(BATCH);
            due = rows.map((r) => r.robot_id);
          },
        ],
        [
          "robots_certificate_replacements",
          async (c) => {
            const { rows } = await c.query("select requested from gk_private.robots_certificate_replacements($1::uuid[], $2::text[])", [
              due,
              due.map(() => null),
            ]);
            expect(rows.filter((r) => r.requested)).toHaveLength(BATCH);
          },
        ],
      ]);
    });
    expectFew(n, BATCH, `a batch of ${BATCH}`);
  });
});
