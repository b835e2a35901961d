// Input decoding shared by every route, done once before routing: a request whose path cannot
// be decoded (malformed percent-encoding, control characters such as NUL, absurd length) is a
// 400/414 here, so no route handler ever sees it; and errors that input provokes further down
// (invalid UUID or byte sequence in SQL, a name too long for the blob store) are classified as
// client errors (4xx, logged at debug without a stack) instead of 500s in the error log.

/** An HTTP error with a status and a message the client may see. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/** Longest request path accepted (bytes, still percent-encoded). */
export const MAX_PATH_BYTES = 4096;

// C0 controls and DEL: never part of a team name, id, TUF role or target path.
const hasControl = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

export interface DecodedPath {
  /** The path as sent (percent-encoded), without the query string. */
  path: string;
  /** Its segments, percent-decoded and checked. */
  segments: string[];
}

/** Decodes and checks a request path; throws HttpError(400 | 414) when it is not acceptable. */
export function decodePath(rawUrl: string | undefined): DecodedPath {
  const raw = rawUrl ?? "/";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new HttpError(414, `request path is longer than ${MAX_PATH_BYTES} bytes`);
  if (!path.startsWith("/")) throw new HttpError(400, "request path must start with /");
  const segments = path
    .slice(1)
    .split("/")
    .map((s) => {
      let d: string;
      try {
        d = decodeURIComponent(s);
      } catch {
        throw new HttpError(400, "malformed percent-encoding in the request path");
      }
      if (hasControl(d)) throw new HttpError(400, "control characters are not allowed in the request path");
      return d;
    });
  return { path, segments };
}

/** The HTTP status for an error a request provoked: 4xx when the input caused it, else 500. */
export function statusForError(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof URIError) return 400;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string") {
    // PostgreSQL data exceptions (invalid text representation, invalid byte sequence, value too long …).
    if (/^22[0-9A-Z]{3}$/.test(code)) return 400;
    if (code === "ENAMETOOLONG") return 404;
  }
  const name = (e as { name?: unknown })?.name;
  if (name === "KeyTooLongError") return 404; // S3: no key can be that long, so nothing is there
  return 500;
}
