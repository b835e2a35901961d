// Errors shared by every layer.

/** An error caused by bad input: the CLI prints its message on one line, without a stack. */
export class UserError extends Error {
  override name = "UserError";
}

/** A one-line message for logs and `last_error` columns: the class name unless it is plain Error. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? `${e.name === "Error" ? "" : `${e.name}: `}${e.message}` : String(e);
}
