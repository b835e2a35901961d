// Telling "the database is unavailable" (worth waiting for) from every other database error.

// Socket-level failures of a connection or of connecting (ENOENT: the Unix socket is gone).
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOENT"]);
// SQLSTATE class 08 (connection exception) and the server shutting down or starting up.
const SQLSTATES = /^(08...|57P01|57P02|57P03)$/;
const MESSAGES =
  /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|terminating connection due to administrator command/i;

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  errors?: unknown[];
  cause?: unknown;
}

/** True when `e` (or what it wraps: AggregateError members, a cause) says the database cannot be reached. */
export function isDatabaseUnavailable(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== "object" || depth > 5) return false;
  const err = e as ErrorLike;
  if (typeof err.code === "string" && (NETWORK_CODES.has(err.code) || SQLSTATES.test(err.code))) return true;
  if (typeof err.message === "string" && MESSAGES.test(err.message)) return true;
  return [...(err.errors ?? []), err.cause].some((inner) => isDatabaseUnavailable(inner, depth + 1));
}
