// What a GraphQL client is told when an operation fails, and what the log keeps. PostgreSQL's
// own errors are the answer an operator needs ("violates check constraint", "permission
// denied"), so they pass through with a stable code derived from their SQLSTATE (the codes the
// stored logic raises are listed in docs/conventions.md); PostGraphile's "nothing was deleted"
// becomes NOT_FOUND; anything unexpected is masked for the client and logged as one JSON line
// with an id the client can quote.
import crypto from "node:crypto";
import type { Logger } from "pino";
import { isSafeError } from "postgraphile/grafast";
import { GraphQLError } from "postgraphile/graphql";

/** SQLSTATE → the code clients see in `extensions.code` (the SQLSTATE itself is `extensions.sqlstate`). */
export const SQLSTATE_CODES: Record<string, string> = {
  P0002: "NOT_FOUND",
  "22023": "BAD_INPUT",
  "22P02": "BAD_INPUT",
  "22001": "BAD_INPUT",
  "22003": "BAD_INPUT",
  "22007": "BAD_INPUT",
  "22008": "BAD_INPUT",
  "23502": "BAD_INPUT",
  "23514": "BAD_INPUT",
  "55000": "WRONG_STATE",
  "23505": "ALREADY_EXISTS",
  "23503": "CONSTRAINT_VIOLATION",
  "23P01": "CONSTRAINT_VIOLATION",
  "42501": "PERMISSION_DENIED",
  "57014": "STATEMENT_TIMEOUT",
  "40001": "RETRY",
  "40P01": "RETRY",
  "55P03": "RETRY",
};

/** The client-facing code for a SQLSTATE: mapped ones by name, other classes generically. */
export function codeForSqlstate(sqlstate: string): string {
  return SQLSTATE_CODES[sqlstate] ?? (sqlstate.startsWith("22") || sqlstate.startsWith("23") ? "BAD_INPUT" : "DATABASE_ERROR");
}

interface PgErrorLike {
  code: string;
  severity: string;
  message: string;
  detail?: string;
  hint?: string;
  constraint?: string;
}

function isPgError(e: unknown): e is PgErrorLike {
  const o = e as Partial<PgErrorLike> | null;
  return !!o && typeof o.code === "string" && /^[0-9A-Z]{5}$/.test(o.code) && typeof o.severity === "string";
}

// @dataplan/pg's message when a delete/update by key matched no row the role may change.
const NOTHING_CHANGED = /^No values were (deleted|updated) in collection '([^']+)'/;

function rebuild(error: GraphQLError, message: string, extensions: Record<string, unknown>): GraphQLError {
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
}

export function makeMaskError(log?: Logger): (error: GraphQLError) => GraphQLError {
  return (error) => {
    const original = error.originalError;
    if (isPgError(original)) {
      const extensions: Record<string, unknown> = { code: codeForSqlstate(original.code), sqlstate: original.code };
      if (original.detail) extensions.detail = original.detail;
      if (original.hint) extensions.hint = original.hint;
      if (original.constraint) extensions.constraint = original.constraint;
      return rebuild(error, original.message, extensions);
    }
    const nothing = original && NOTHING_CHANGED.exec(original.message);
    if (nothing) {
      return rebuild(error, `nothing was ${nothing[1]}: no row of ${nothing[2]} matches (or this token may not change it)`, {
        code: "NOT_FOUND",
      });
    }
    // Refusals by the query limits, "cannot return null for non-nullable".
    if (!original || original instanceof GraphQLError) return error;
    if (isSafeError(original))
      return rebuild(error, original.message, { ...(original.extensions ?? {}), code: original.extensions?.code ?? "BAD_REQUEST" });
    const id = crypto.randomBytes(6).toString("hex");
    log?.error({ err: original, errorId: id, path: error.path?.join(".") }, "GraphQL operation failed unexpectedly");
    return rebuild(error, `internal error (id ${id}; the server log has the details)`, { code: "INTERNAL_SERVER_ERROR", errorId: id });
  };
}
