// What every role's agent sends to its gateway routes when it registers (src/peers/agent/run.ts
// sends it), so each area's register route parses the same body; and the one-line 400 answer for
// a body that does not parse.
import { z } from "zod";

export const RegisterBody = z
  .object({
    address: z
      .string()
      .max(300)
      .regex(/^https:\/\/[A-Za-z0-9.:[\]-]{1,255}:[0-9]{1,5}$/, "https://host:port"),
    version: z.string().max(100).default(""),
    heartbeat_ttl_seconds: z.number().int().min(2).max(3600).optional(),
  })
  .strict();

/** The heartbeat TTL as a PostgreSQL interval (null: keep the table's default). */
export function registerTtl(body: z.infer<typeof RegisterBody>): string | null {
  return body.heartbeat_ttl_seconds === undefined ? null : `${body.heartbeat_ttl_seconds} seconds`;
}

export function badPeerRequest(e: z.ZodError): { status: 400; body: { error: string } } {
  return { status: 400, body: { error: e.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ") } };
}
