// Runtime configuration from the environment, validated once with zod.
import path from "node:path";
import { z } from "zod";

const EnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\//.test(s), "DATABASE_URL must be a postgres:// URL")
    .optional(),
  GROUNDSKEEPER_HOME: z.string().default(".groundskeeper"),
  PORT: z.coerce.number().int().min(0).max(65535).default(5678),
  HOST: z.string().default("127.0.0.1"),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
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

/** An error caused by bad input: the CLI prints its message on one line, without a stack. */
export class UserError extends Error {
  override name = "UserError";
}
