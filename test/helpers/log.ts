// A pino logger whose JSON lines the test can read (what the server writes to stderr in production).
import { Writable } from "node:stream";
import { type Logger, pino } from "pino";

export function capturedLog(level = "debug"): { log: Logger; lines: any[] } {
  const lines: any[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}
