// A cap on the size of a GraphQL response body. The query cost budget bounds how many values an
// operation returns, not how large each is (a JSON column can hold megabytes); grafserv writes a
// finished result with writeHead + end(buffer), so holding back writeHead until end() lets us
// replace an oversized body with a GraphQL error instead of sending it.
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";

export function capResponse(res: ServerResponse, maxBytes: number): void {
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: OutgoingHttpHeaders) => ServerResponse;
  const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse;
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  let head: [number, OutgoingHttpHeaders | undefined] | undefined;
  let sent = 0;
  const flushHead = () => {
    if (head) writeHead(...head);
    head = undefined;
  };
  res.writeHead = ((status: number, headers?: OutgoingHttpHeaders) => {
    head = [status, headers];
    return res;
  }) as typeof res.writeHead;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    flushHead();
    sent += byteLength(chunk);
    // A streamed body cannot be replaced any more: cut the connection instead of sending more.
    if (sent > maxBytes) {
      res.destroy(new Error(`response larger than ${maxBytes} bytes`));
      return false;
    }
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (head && chunk != null && typeof chunk !== "function" && sent + byteLength(chunk) > maxBytes) {
      const body = Buffer.from(
        JSON.stringify({
          errors: [
            {
              message: `the response would be larger than ${maxBytes} bytes: ask for fewer rows (first) or fewer large fields`,
              extensions: { code: "RESPONSE_TOO_LARGE", maxResponseBytes: maxBytes },
            },
          ],
        }),
      );
      head = undefined;
      writeHead(200, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(body.length) });
      return end(body);
    }
    flushHead();
    return end(chunk, ...rest);
  }) as typeof res.end;
}

function byteLength(chunk: unknown): number {
  if (typeof chunk === "string") return Buffer.byteLength(chunk);
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}
