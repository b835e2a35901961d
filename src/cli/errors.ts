// Turns known failures into one line for the user; anything else is a bug and keeps its stack.
import { CommanderError } from "commander";
import { UserError } from "../lib/errors.ts";

interface ErrorLike {
  message?: string;
  code?: string;
  address?: string;
  port?: number;
  hostname?: string;
  errors?: unknown[];
  severity?: string;
}

/** The one-line message for a known failure, or null for an unexpected error. */
export function describeError(e: unknown): string | null {
  if (e instanceof UserError) return e.message;
  const err = (e ?? {}) as ErrorLike;
  // Node's happy-eyeballs connect reports an AggregateError whose members carry the code.
  const inner = (err.errors?.[0] ?? {}) as ErrorLike;
  const code = err.code ?? inner.code;
  const where = err.address ?? inner.address;
  const port = err.port ?? inner.port;
  const at = where ? ` at ${where}${port ? `:${port}` : ""}` : "";
  switch (code) {
    case "ECONNREFUSED":
      return `cannot connect to PostgreSQL${at}: connection refused (is it running? check DATABASE_URL)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot resolve the database host${err.hostname ? ` '${err.hostname}'` : ""} (check DATABASE_URL)`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `cannot reach PostgreSQL${at} (${code}; check DATABASE_URL)`;
    case "ERR_INVALID_URL":
      return "DATABASE_URL is not a valid URL (expected postgres://user:password@host:port/database)";
    case "EADDRINUSE":
      return `address already in use${at} (set PORT or --port)`;
    // PostgreSQL error codes.
    case "28P01":
    case "28000":
      return `PostgreSQL refused the login: ${err.message} (check DATABASE_URL)`;
    case "3D000":
      return `${err.message} (check DATABASE_URL)`;
    case "42P01":
    case "3F000":
    case "42883":
      return `the database is not migrated (${err.message}); run 'groundskeeper migrate' first`;
    case "57P01":
    case "57P03":
      return `PostgreSQL is shutting down or starting up: ${err.message}`;
  }
  if (err.message && /^(Invalid URL|invalid connection string)/i.test(err.message)) {
    return "DATABASE_URL is not a valid URL (expected postgres://user:password@host:port/database)";
  }
  if (err.message === "Connection terminated unexpectedly") return "the database connection was closed unexpectedly";
  // Any other error reported by PostgreSQL itself: its message is what the user needs.
  if (typeof err.severity === "string" && err.message) return `database error: ${err.message}${code ? ` (${code})` : ""}`;
  return null;
}

export function isCommanderExit(e: unknown): e is CommanderError {
  return e instanceof CommanderError;
}
