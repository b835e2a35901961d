// Runtime configuration from the environment, validated once with zod.
import path from "node:path";
import { z } from "zod";
import { UserError } from "./lib/errors.ts";

const EnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\//.test(s), "must be a postgres:// URL (postgres://user:password@host:port/database)")
    .optional(),
  /**
   * With DATABASE_URL: the admin server's own login, a non-superuser member of gk_api, gk_admin
   * and gk_viewer (README, "Database roles"). Unset: the server logs in with DATABASE_URL and
   * switches to gk_api.
   */
  API_DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\//.test(s), "must be a postgres:// URL (postgres://user:password@host:port/database)")
    .optional(),
  /**
   * With DATABASE_URL: the mutual-TLS listeners' own login (peer gateway, robot API), a
   * non-superuser member of gk_peer only (README, "Database roles"). Unset: they log in with
   * DATABASE_URL and switch to gk_peer (refused when API_DATABASE_URL is set: src/cli/parts.ts).
   */
  PEER_DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\//.test(s), "must be a postgres:// URL (postgres://user:password@host:port/database)")
    .optional(),
  GROUNDSKEEPER_HOME: z.string().default(".groundskeeper"),
  PORT: z.coerce.number().int().min(0).max(65535).default(5678),
  HOST: z.string().default("127.0.0.1"),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  /** Seconds a worker is trusted without a heartbeat; then its jobs are released to other workers. */
  WORKER_HEARTBEAT_TTL: z.coerce.number().int().min(2).max(3600).default(60),
  /** Per-statement limit for admin API queries (a PostgreSQL duration: 15s, 500ms, 2min). */
  API_STATEMENT_TIMEOUT: z
    .string()
    .regex(/^\d+\s*(ms|s|min)?$/, "expected a duration like 15s, 500ms or 2min")
    .default("15s"),
  /** Port of the peer gateway (mutual TLS; agents register and heartbeat there). Unset: off. */
  PEER_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  PEER_HOST: z.string().optional(),
  /** Port of the robot API (mutual TLS with robot certificates). Unset: off. */
  ROBOT_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  ROBOT_HOST: z.string().optional(),
  /** Life of the capability the robot API gives a robot to fetch an image from its export node
   * (src/exports/robot-routes.ts; nodes refuse one over 1 h). Checked here so a bad value stops
   * the process at start rather than failing each robot's fetch. */
  GK_EXPORTS_FETCH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(10).max(3600).default(300),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof EnvSchema> & { home: string };

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new UserError(`invalid configuration: ${msg}`);
  }
  return { ...parsed.data, home: path.resolve(parsed.data.GROUNDSKEEPER_HOME) };
}
