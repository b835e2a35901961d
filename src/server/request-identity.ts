// Who sent a GraphQL request: the server sets it from the bearer token before grafserv sees the
// request; in-process callers (tests, scripts) put it in the request context. Read by pgSettings
// (the database role) and by the audit log (the token's id and name).
import type { IncomingMessage } from "node:http";
import type {} from "postgraphile/grafserv/node"; // types requestContext.node
import type { TokenIdentity } from "./tokens.ts";

declare global {
  namespace Grafast {
    interface RequestContext {
      /** Set by in-process callers (tests, scripts) that already know the role. */
      groundskeeper?: { role: string; token?: { id: string; name: string } };
    }
  }
}

const requestIdentities = new WeakMap<IncomingMessage, TokenIdentity>();

export function setRequestIdentity(req: IncomingMessage, identity: TokenIdentity): void {
  requestIdentities.set(req, identity);
}

/** The role and token of an operation: from the HTTP request, or given by an in-process caller. */
export function requestIdentity(ctx: Partial<Grafast.RequestContext>): { role: string; token?: { id: string; name: string } } | undefined {
  if (ctx.groundskeeper) return ctx.groundskeeper;
  const id = ctx.node?.req ? requestIdentities.get(ctx.node.req) : undefined;
  return id ? { role: id.role, token: { id: id.id, name: id.name } } : undefined;
}
