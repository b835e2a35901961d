// The admin API's audit log: every GraphQL mutation is recorded after it ran — which token (id
// and name, never the secret), which fields with which arguments (bounded), when, how long, and
// the outcome — as a row in gk_public.audit_events (through gk_private.audit_record) and as one
// JSON log line. It is a grafast `execute` middleware, so mutations run in-process are recorded
// too. The row is written after the mutation's own transaction: if that write fails the log
// line still says what happened, and the failure is logged.
import type pg from "pg";
import type { Logger } from "pino";
import { Kind, type DocumentNode, getOperationAST, type OperationDefinitionNode, valueFromASTUntyped } from "postgraphile/graphql";
import { requestIdentity } from "./request-identity.ts";

export interface AuditEntry {
  token?: { id: string; name: string };
  role: string;
  /** "mutation" for GraphQL, or the HTTP operation of a route ("GET /certificates/{id}/key.pem"). */
  operation: string;
  operationName?: string | null;
  fields: string[];
  arguments: Record<string, unknown>;
  outcome: "succeeded" | "failed";
  error?: string | null;
  durationMs: number;
}

const MAX_ITEMS = 20;
const MAX_STRING = 300;
const MAX_DEPTH = 5;
const MAX_JSON = 8000;
const SECRET_NAME = /secret|password|private|token|passphrase/i;

/** A copy of `value` small enough to keep: long lists and strings cut (with how much was left out), secrets redacted. */
export function boundValue(value: unknown, depth = 0, key = ""): unknown {
  if (key && SECRET_NAME.test(key)) return "[redacted]";
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… (${value.length} chars)` : value;
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH) return "…";
  if (Array.isArray(value)) {
    const kept = value.slice(0, MAX_ITEMS).map((v) => boundValue(v, depth + 1));
    return value.length > MAX_ITEMS ? [...kept, `… ${value.length - MAX_ITEMS} more`] : kept;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries.slice(0, MAX_ITEMS)) out[k] = boundValue(v, depth + 1, k);
  if (entries.length > MAX_ITEMS) out["…"] = `${entries.length - MAX_ITEMS} more keys`;
  return out;
}

/** Arguments bounded for the audit log (see boundValue). */
export function boundArguments(args: Record<string, unknown>): Record<string, unknown> {
  return boundValue(args) as Record<string, unknown>;
}

/** The root fields of a mutation and their arguments (variables applied), bounded. */
export function mutationSummary(
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): { fields: string[]; arguments: Record<string, unknown> } {
  const fields: string[] = [];
  const args: Record<string, unknown> = {};
  for (const sel of operation.selectionSet.selections) {
    if (sel.kind !== Kind.FIELD) continue;
    const name = sel.name.value;
    fields.push(name);
    const values: Record<string, unknown> = {};
    for (const a of sel.arguments ?? []) values[a.name.value] = valueFromASTUntyped(a.value, variables ?? undefined);
    args[sel.alias?.value ?? name] = boundValue(values);
  }
  let bounded: Record<string, unknown> = args;
  const json = JSON.stringify(args);
  if (json.length > MAX_JSON) bounded = { truncated: true, preview: json.slice(0, MAX_JSON - 100) };
  return { fields: fields.slice(0, 64), arguments: bounded };
}

/** Writes one audit row and the JSON log line; never throws (a failed write is logged). */
export async function recordAudit(db: Pick<pg.Pool, "query">, log: Logger | undefined, e: AuditEntry): Promise<void> {
  log?.info(
    {
      audit: {
        token: e.token ?? null,
        role: e.role,
        operation: e.operation,
        operationName: e.operationName ?? null,
        fields: e.fields,
        arguments: e.arguments,
        outcome: e.outcome,
        error: e.error ?? null,
        durationMs: e.durationMs,
      },
    },
    `audit: ${e.operation} ${e.fields.join(", ")} by ${e.token?.name ?? "in-process"}: ${e.outcome}`,
  );
  try {
    await db.query("select gk_private.audit_record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", [
      e.token?.id ?? null,
      e.token?.name ?? "in-process",
      e.role,
      e.operation,
      e.operationName ?? null,
      e.fields,
      JSON.stringify(e.arguments),
      e.outcome,
      e.error ?? null,
      Math.round(e.durationMs),
    ]);
  } catch (err) {
    log?.error({ err, audit: { operation: e.operation, fields: e.fields, token: e.token ?? null } }, "audit record could not be written");
  }
}

export function makeAuditPlugin(opts: { pool: Pick<pg.Pool, "query">; log?: Logger }): GraphileConfig.Plugin {
  return {
    name: "GroundskeeperAuditPlugin",
    description: "Records every mutation in gk_public.audit_events and the log",
    version: "1.0.0",
    grafast: {
      middleware: {
        async execute(next, event) {
          const { document, operationName, variableValues, requestContext } = event.args;
          const operation = getOperationAST(document as DocumentNode, operationName ?? undefined);
          if (operation?.operation !== "mutation") return next();
          const identity = requestIdentity(requestContext ?? {});
          const started = performance.now();
          const summary = mutationSummary(operation, variableValues as Record<string, unknown> | undefined);
          let outcome: AuditEntry["outcome"] = "failed";
          let error: string | null = null;
          try {
            const result = await next();
            const errors = "errors" in result ? result.errors : undefined;
            if (errors?.length) error = errors.map((er) => er.message).join("; ");
            else outcome = "succeeded";
            return result;
          } catch (e) {
            error = (e as Error).message;
            throw e;
          } finally {
            await recordAudit(opts.pool, opts.log, {
              ...(identity?.token ? { token: identity.token } : {}),
              role: identity?.role ?? "gk_viewer",
              operation: "mutation",
              operationName: operation.name?.value ?? null,
              ...summary,
              outcome,
              error,
              durationMs: performance.now() - started,
            });
          }
        },
      },
    },
  };
}
