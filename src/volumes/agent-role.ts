// The volumes role of the agent (on a build worker): its routes over the on-disk store
// (src/volumes/store.ts). Groundskeeper asks for the report (GET /v1/volumes), creates and
// destroys; the role heartbeats its counts. Destroying answers per handle within a deadline, so
// one volume whose removal hangs never holds up the answer for the others in its batch.
import { z } from "zod";
import { errorMessage } from "../lib/errors.ts";
import { mapSettled } from "../lib/map-limit.ts";
import { AgentHttpError, type AgentRole, type AgentRoute } from "../peers/agent/role.ts";
import { HANDLE, VolumeError, VolumeStore } from "./store.ts";

/** Largest batch a destroy call takes (Groundskeeper sends smaller ones). */
export const MAX_DESTROY_BATCH = 1000;

const Handle = z.string().regex(HANDLE, "a volume handle (lower-case UUID)");
const CreateBody = z.object({ handle: Handle, parent: Handle.optional() }).strict();
const DestroyBody = z.object({ handles: z.array(Handle).min(1).max(MAX_DESTROY_BATCH) }).strict();

export interface DestroyResult {
  destroyed: string[];
  failed: { handle: string; error: string }[];
  /** Still being renamed when the deadline passed: asked again later. */
  pending: string[];
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (!r.success) throw new AgentHttpError(400, r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  return r.data;
}

export function volumesRole(opts: { destroyDeadlineMs?: number; destroyConcurrency?: number } = {}): AgentRole {
  const deadline = opts.destroyDeadlineMs ?? 5_000;
  const concurrency = opts.destroyConcurrency ?? 16;
  return {
    name: "volumes",
    async start({ dir, log }) {
      const store = new VolumeStore(dir);
      const swept = await store.open();
      if (swept.init || swept.dead) log.info(swept, "volumes: removed what a crash left behind");
      // A removal that failed (busy disk) is retried; dead/ must drain.
      const sweeper = setInterval(() => void store.sweepDead(), 30_000);
      sweeper.unref();

      const destroyOne = (handle: string): Promise<"destroyed" | "pending"> =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => resolve("pending"), deadline);
          store.destroy(handle).then(
            () => (clearTimeout(timer), resolve("destroyed")),
            (e) => (clearTimeout(timer), reject(e)),
          );
        });

      const routes: AgentRoute[] = [
        { method: "GET", path: /^\/v1\/volumes$/, handle: async () => ({ status: 200, body: await store.list() }) },
        {
          method: "POST",
          path: /^\/v1\/volumes$/,
          handle: async (req) => {
            const { handle, parent } = parse(CreateBody, req.body);
            try {
              const { created } = await store.create(handle, parent);
              return { status: created ? 201 : 200, body: { handle } };
            } catch (e) {
              if (e instanceof VolumeError) throw new AgentHttpError(e.code === "parent_missing" ? 404 : 400, e.message);
              throw e;
            }
          },
        },
        {
          method: "GET",
          path: /^\/v1\/volumes\/([0-9a-f-]{36})$/,
          handle: async (req) => {
            const state = await store.has(req.params[0]!);
            return state ? { status: 200, body: { handle: req.params[0], state } } : { status: 404, body: { error: "no such volume" } };
          },
        },
        {
          method: "POST",
          path: /^\/v1\/volumes\/destroy$/,
          handle: async (req) => {
            const { handles } = parse(DestroyBody, req.body);
            const out: DestroyResult = { destroyed: [], failed: [], pending: [] };
            const results = await mapSettled(handles, concurrency, destroyOne);
            results.forEach((r, i) => {
              const handle = handles[i]!;
              if (r.status === "fulfilled") out[r.value].push(handle);
              else out.failed.push({ handle, error: errorMessage(r.reason) });
            });
            if (out.failed.length) log.warn({ failed: out.failed.length, first: out.failed[0] }, "volumes: destroy refused");
            return { status: 200, body: out };
          },
        },
        {
          method: "DELETE",
          path: /^\/v1\/volumes\/([0-9a-f-]{36})$/,
          handle: async (req) => {
            await store.destroy(req.params[0]!);
            return { status: 204 };
          },
        },
      ];
      return {
        routes,
        heartbeat: async () => ({ live_volumes: (await store.list()).live.length, dead_volumes: await store.deadCount() }),
        stop: async () => clearInterval(sweeper),
      };
    },
  };
}
