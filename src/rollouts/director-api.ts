// What a robot may do with its director and its rollouts, as functions of the authenticated
// robot (never a robot id from the request): read N.root.json, timestamp.json, snapshot.json,
// targets.json — each regenerated first if dirty — and report ECU events. The robot API's
// routes (robot-routes.ts) call these; tests call them directly too.
import type pg from "pg";
import { z } from "zod";
import { transaction } from "../db/pool.ts";
import type { SecretBox } from "../lib/secrets.ts";
import { ensureDirector } from "./director-keys.ts";
import { readDirector } from "./regenerate.ts";

export interface RobotRef {
  robotId: string;
  teamId: string;
  /** The certificate the robot API verified (src/peers/robot-api.ts): the director's online key
   * is read through it on a gk_peer connection. Absent on the owner's (tests, the CLI). */
  serial?: string;
  certificate?: Buffer;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  raw?: { contentType: string; data: string };
}

const json = (data: string): ApiResponse => ({ status: 200, raw: { contentType: "application/json", data } });
const notFound = (what: string): ApiResponse => ({ status: 404, body: { error: `${what} not found` } });

/** GET a director metadata file of the calling robot. */
export async function directorFile(pool: pg.Pool, box: SecretBox, robot: RobotRef, file: string): Promise<ApiResponse> {
  const root = /^([1-9][0-9]{0,8})\.root\.json$/.exec(file);
  if (root) {
    const version = Number(root[1]);
    if (version === 1) {
      const c = await pool.connect();
      try {
        await ensureDirector(c, box, robot.teamId);
      } finally {
        c.release();
      }
    }
    const { rows } = await pool.query("select document from gk_public.director_roots where team_id = $1 and version = $2", [
      robot.teamId,
      version,
    ]);
    return rows[0] ? json(rows[0].document) : notFound(file);
  }
  const role = /^(timestamp|snapshot|targets)\.json$/.exec(file)?.[1] as "timestamp" | "snapshot" | "targets" | undefined;
  if (!role) return notFound(file.slice(0, 100));
  const presented = robot.serial && robot.certificate ? { serial: robot.serial, certificate: robot.certificate } : undefined;
  const read = await readDirector(pool, box, robot.robotId, robot.teamId, presented);
  return read ? json(read.director[role]) : notFound("robot");
}

export const EVENT_TYPES = [
  "download_started",
  "download_completed",
  "download_failed",
  "installation_started",
  "installation_completed",
  "installation_failed",
] as const;

export const EcuEvents = z
  .object({
    events: z
      .array(
        z
          .object({
            id: z.uuid(),
            ecuSerial: z.string().min(1).max(64),
            type: z.enum(EVENT_TYPES),
            description: z.string().max(2000).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(100),
  })
  .strict();

/** POST ECU events: all or none (one transaction); each is recorded once by its id. */
export async function postEcuEvents(pool: pg.Pool, robot: RobotRef, body: unknown): Promise<ApiResponse> {
  const parsed = EcuEvents.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { status: 400, body: { error: `bad events: ${issue.path.join(".") || "body"}: ${issue.message}` } };
  }
  const c = await pool.connect();
  try {
    const results = await transaction(c, async () => {
      const out: { id: string; outcome: string }[] = [];
      for (const e of parsed.data.events) {
        const { rows } = await c.query("select gk_private.rollouts_record_event($1, $2, $3, $4, $5) as outcome", [
          robot.robotId,
          e.id,
          e.ecuSerial,
          e.type,
          e.description ?? null,
        ]);
        out.push({ id: e.id, outcome: rows[0].outcome });
      }
      return out;
    });
    return { status: 200, body: { results } };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "P0002" || code === "22023") return { status: code === "P0002" ? 404 : 400, body: { error: (e as Error).message } };
    throw e;
  } finally {
    c.release();
  }
}
