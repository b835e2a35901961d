// A robot's read of its certificate (GET /robot/v1/certificate): the newest issued certificate
// of the robot, with the CA certificate that verifies it.
import type pg from "pg";
import type { RobotIdentity, RobotResponse } from "../peers/robot-api.ts";
import type { Services } from "../services.ts";

interface Current {
  id: string;
  pem: string | null;
  serial: string | null;
  not_after: Date;
}

export async function readCertificate(db: pg.Pool, services: Services, robot: RobotIdentity, _signal: AbortSignal): Promise<RobotResponse> {
  const { rows } = await db.query<Current>(
    `select id, gk_public.download_certificate(id) as pem, serial, not_after
       from gk_public.certificates
      where robot_id = $1 and profile = 'robot' and status = 'issued' and not_after > now()
      order by issued_at desc limit 1`,
    [robot.robotId],
  );
  const cur = rows[0];
  if (!cur?.pem) return { status: 503, body: { error: "no certificate to hand over yet" }, headers: { "Retry-After": "1" } };
  return {
    status: 200,
    body: {
      certificate_id: cur.id,
      serial: cur.serial,
      not_after: cur.not_after.toISOString(),
      certificate_pem: cur.pem,
      ca_certificate_pem: services.ca ? await services.ca.caCertificatePem() : null,
    },
  };
}
