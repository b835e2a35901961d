// The volumes role's side of the peer gateway: an agent registers its worker (where it listens)
// and heartbeats. The worker is the certificate's owner: an agent can only speak for itself.
import { z } from "zod";
import type { PeerRoute } from "../peers/gateway.ts";

const Register = z
  .object({
    address: z
      .string()
      .max(300)
      .regex(/^https:\/\/[A-Za-z0-9.:[\]-]{1,255}:[0-9]{1,5}$/, "https://host:port"),
    version: z.string().max(100).default(""),
    heartbeat_ttl_seconds: z.number().int().min(2).max(3600).optional(),
  })
  .strict();
const Heartbeat = z
  .object({ live_volumes: z.number().int().min(0).max(1e9), dead_volumes: z.number().int().min(0).max(1e9) })
  .partial()
  .strict();

function bad(e: z.ZodError) {
  return { status: 400, body: { error: e.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ") } };
}

export const volumesPeerRoutes: PeerRoute[] = [
  {
    method: "POST",
    path: /^\/peer\/v1\/volumes\/register$/,
    profile: "worker",
    handle: async ({ body, peer, db }) => {
      const r = Register.safeParse(body ?? {});
      if (!r.success) return bad(r.error);
      const ttl = r.data.heartbeat_ttl_seconds === undefined ? null : `${r.data.heartbeat_ttl_seconds} seconds`;
      const { rows } = await db.query("select name, state from gk_private.worker_registered($1, $2, $3, $4::interval)", [
        peer.ownerId,
        r.data.address,
        r.data.version,
        ttl,
      ]);
      if (!rows[0]?.name) return { status: 404, body: { error: "worker not found" } };
      return { status: 200, body: rows[0] };
    },
  },
  {
    method: "POST",
    path: /^\/peer\/v1\/volumes\/heartbeat$/,
    profile: "worker",
    handle: async ({ body, peer, db }) => {
      const r = Heartbeat.safeParse(body ?? {});
      if (!r.success) return bad(r.error);
      const { rows } = await db.query("select gk_private.worker_heartbeat($1, $2, $3) as state", [
        peer.ownerId,
        r.data.live_volumes ?? null,
        r.data.dead_volumes ?? null,
      ]);
      if (!rows[0]?.state) return { status: 404, body: { error: "worker not found" } };
      return { status: 200, body: { state: rows[0].state } };
    },
  },
];
