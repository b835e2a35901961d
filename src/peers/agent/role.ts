// What a role of the agent program brings. The agent is one binary with one authenticated HTTPS
// server; each role (the volumes of a build worker; an export node's attachments) adds routes
// and says how it registers and heartbeats with Groundskeeper. Roles come from area manifests
// (`agentRoles`), so this kit names none of them.
import type { Logger } from "pino";

export interface AgentRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Captures of the route's pattern. */
  params: string[];
  query: URLSearchParams;
  /** Parsed JSON body (undefined when there was none). */
  body: unknown;
  /** The authenticated caller (a Groundskeeper controller, or the holder of a capability for this route). */
  caller: { commonName: string; serial: string };
}

export interface AgentResponse {
  status: number;
  body?: unknown;
  /** Instead of a JSON body: a file streamed as application/octet-stream (read-only content). */
  file?: string;
}

export interface AgentRoute {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Anchored pattern over the path; capture groups become `params`. */
  path: RegExp;
  /** Largest accepted body (default 64 KiB). */
  maxBodyBytes?: number;
  /**
   * Callers other than the controller may use this route with a capability token
   * (src/peers/capability.ts) whose resource is what this returns for the path's captures.
   */
  capability?(params: string[]): string;
  handle(req: AgentRequest): Promise<AgentResponse>;
}

export interface AgentRoleContext {
  /** This role's own data directory (<data dir>/<role name>). */
  dir: string;
  log: Logger;
}

export interface StartedRole {
  routes: AgentRoute[];
  /** Sent with every heartbeat to the role's gateway route (counts, backlog...). */
  heartbeat?(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface AgentRole {
  /** The role's name: its data directory, its gateway routes (/peer/v1/<name>/register|heartbeat). */
  name: string;
  start(ctx: AgentRoleContext): Promise<StartedRole>;
}

/** A 4xx answer from a role's handler (the server answers `{ error: message }`). */
export { PeerRequestError as AgentHttpError } from "../http.ts";
