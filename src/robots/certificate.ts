// A robot's read of its certificate (GET /robot/v1/certificate), where a dirty certificate is
// regenerated (Candlepin's regenerate-at-check-in): under the robot's row lock, a replacement is
// requested once through the ordinary request path (sql/630_robots_certificates.sql; a worker's
// certificates__issue issues it) — concurrent reads find it already requested — and the read
// waits, bounded, for it to be issued. Handing the replacement over (download_certificate)
// supersedes the old certificate at once. Every read goes through the certificate the robot
// presented (robot_presented_…, sql/930_peer_role.sql): gk_peer reads no other certificate.
import crypto from "node:crypto";
import type pg from "pg";
import { inTransaction } from "../db/pool.ts";
import type { RobotIdentity, RobotResponse } from "../peers/robot-api.ts";
import type { Services } from "../services.ts";

/** How long a read waits for a replacement to be issued before answering 202 (retry). */
export const REGENERATION_WAIT_MS = 10_000;

interface Current {
  id: string;
  pem: string | null;
  serial: string | null;
  not_after: Date;
  has_key: boolean;
  dirty: boolean;
}

/** The SPKI of a certificate's key, for a replacement of a certificate whose key the CA made. */
export function spkiOfPem(pem: string): string {
  return new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "pem" }) as string;
}

/** The presented certificate, through which the robot API's gk_peer connections read certificates
 * (gk_private.robot_presented_…, sql/930_peer_role.sql): only the presenting robot's. */
type Presented = Pick<RobotIdentity, "serial" | "certificate">;

async function current(db: pg.Pool | pg.PoolClient, robot: Presented): Promise<Current | undefined> {
  const { rows } = await db.query<Current>(
    `select c.id, c.pem, c.serial, c.not_after, c.public_key_pem is not null or c.csr_pem is not null as has_key,
            c.subject_generation < r.certificate_generation and r.certificate_dirty_since is not null as dirty
       from gk_private.robot_presented_current_certificate($1, $2) c join gk_public.robots r on r.id = c.robot_id`,
    [robot.serial, robot.certificate],
  );
  return rows[0];
}

/** Requests (once) the replacement of a dirty robot's certificate; its id, or null when clean. */
export async function requestReplacement(db: pg.Pool, robot: Presented & { robotId: string }): Promise<string | null> {
  const { robotId } = robot;
  const before = await current(db, robot);
  if (!before?.dirty) return null;
  const spki = !before.has_key && before.pem ? spkiOfPem(before.pem) : null;
  return inTransaction(db, async (c) => {
    // The row lock serialises reads of one robot (and the sweep skips a robot held here).
    await c.query("select 1 from gk_public.robots where id = $1 for update", [robotId]);
    const { rows } = await c.query<{ certificate_id: string }>(
      "select certificate_id from gk_private.robots_certificate_replacements(array[$1::uuid], array[$2::text])",
      [robotId, spki],
    );
    return rows[0]?.certificate_id ?? null;
  });
}

async function waitForIssue(db: pg.Pool, robot: Presented, id: string, signal: AbortSignal, waitMs: number): Promise<string | null> {
  const deadline = Date.now() + waitMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 50)) {
    const { rows } = await db.query<{ status: string; pem: string | null }>(
      "select status, pem from gk_private.robot_presented_certificate($1, $2, $3)",
      [robot.serial, robot.certificate, id],
    );
    if (rows[0]?.status === "issued" && rows[0].pem) return rows[0].pem;
    if (rows[0]?.status !== "issuing" && rows[0]?.status !== "issued") return null;
    if (Date.now() + pause > deadline || signal.aborted) return null;
    await new Promise((r) => setTimeout(r, pause));
  }
}

export async function readCertificate(
  db: pg.Pool,
  services: Services,
  robot: RobotIdentity,
  signal: AbortSignal,
  waitMs = REGENERATION_WAIT_MS,
): Promise<RobotResponse> {
  const replacement = await requestReplacement(db, robot);
  if (replacement && !(await waitForIssue(db, robot, replacement, signal, waitMs))) {
    return { status: 202, body: { status: "regenerating", certificate_id: replacement }, headers: { "Retry-After": "2" } };
  }
  const cur = await current(db, robot);
  if (!cur) return { status: 503, body: { error: "no certificate to hand over yet" }, headers: { "Retry-After": "1" } };
  // Records downloaded_at; for a replacement that revokes what it replaces (superseded).
  const { rows } = await db.query<{ pem: string | null }>("select gk_private.robot_presented_download($1, $2, $3) as pem", [
    robot.serial,
    robot.certificate,
    cur.id,
  ]);
  if (!rows[0]?.pem) return { status: 503, body: { error: "no certificate to hand over yet" }, headers: { "Retry-After": "1" } };
  return {
    status: 200,
    body: {
      certificate_id: cur.id,
      serial: cur.serial,
      not_after: cur.not_after.toISOString(),
      certificate_pem: rows[0].pem,
      ca_certificate_pem: services.ca ? await services.ca.caCertificatePem() : null,
    },
  };
}
