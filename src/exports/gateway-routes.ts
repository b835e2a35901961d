// The exports role's side of the peer gateway: an agent registers its worker as an export node
// (where it listens) and heartbeats. The worker is the certificate's owner, so an agent can only
// speak for its own node.
import { z } from "zod";
import type { PeerRoute } from "../peers/gateway.ts";
import { badPeerRequest as bad, RegisterBody as Register, registerTtl } from "../peers/register.ts";

const Heartbeat = z
  .object({ attachments: z.number().int().min(0).max(1e9) })
  .partial()
  .strict();

export const exportsPeerRoutes: PeerRoute[] = [
  {
    method: "POST",
    path: /^\/peer\/v1\/exports\/register$/,
    profile: "worker",
    handle: async ({ body, peer, db }) => {
      const r = Register.safeParse(body ?? {});
      if (!r.success) return bad(r.error);
      const ttl = registerTtl(r.data);
      const { rows } = await db.query("select id, state from gk_private.export_node_registered($1, $2, $3, $4::interval)", [
        peer.ownerId,
        r.data.address,
        r.data.version,
        ttl,
      ]);
      if (!rows[0]) return { status: 404, body: { error: "worker not found" } };
      return { status: 200, body: rows[0] };
    },
  },
  {
    method: "POST",
    path: /^\/peer\/v1\/exports\/heartbeat$/,
    profile: "worker",
    handle: async ({ body, peer, db }) => {
      const r = Heartbeat.safeParse(body ?? {});
      if (!r.success) return bad(r.error);
      const { rows } = await db.query("select gk_private.export_node_heartbeat($1, $2) as state", [
        peer.ownerId,
        r.data.attachments ?? null,
      ]);
      if (!rows[0]?.state) return { status: 404, body: { error: "export node not found" } };
      return { status: 200, body: { state: rows[0].state } };
    },
  },
];
