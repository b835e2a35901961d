// Sections of `groundskeeper status`. Each collects its data with SQL and renders it as text;
// `--json` prints { <name>: <data> } for all of them. The platform's own sections (job queue,
// activations) are here; areas add theirs through their manifest's `statusSections`.
import type pg from "pg";
import { formatTable } from "../format.ts";

export type Queryable = Pick<pg.Pool, "query">;

export interface StatusSection<T = unknown> {
  /** Key in the JSON output. */
  name: string;
  title: string;
  collect(db: Queryable): Promise<T>;
  render(data: T): string;
  /** `status --watch`: follow this section live until it settles (or `signal` aborts); returns a closing line. */
  watch?(db: Queryable, opts: { signal?: AbortSignal }): Promise<string>;
}

export interface JobsByTask {
  task: string;
  ready: number;
  scheduled: number;
  running: number;
  /** Locked by a pool whose heartbeat expired: not running, waiting for queue__reap_workers. */
  stalled: number;
  retrying: number;
  failed: number;
}

export interface FailedJob {
  id: string;
  task: string;
  attempts: number;
  last_error: string | null;
  updated_at: Date;
}

export const jobsSection: StatusSection<{ tasks: JobsByTask[]; failed: FailedJob[] }> = {
  name: "jobs",
  title: "Job queue",
  async collect(db) {
    // graphile_worker.jobs through sql/060_queue.sql (its public interface only).
    const tasks = await db.query<JobsByTask>(
      "select task, ready, scheduled, running, stalled, retrying, failed from gk_private.queue_jobs_by_task()",
    );
    const failed = await db.query<FailedJob>(
      "select id::text, task, attempts, last_error, updated_at from gk_private.queue_failed_jobs(20)",
    );
    return { tasks: tasks.rows, failed: failed.rows };
  },
  render({ tasks, failed }) {
    const table = formatTable(
      ["task", "ready", "scheduled", "running", "stalled", "retrying", "failed"],
      tasks.map((t) => [t.task, t.ready, t.scheduled, t.running, t.stalled, t.retrying, t.failed].map(String)),
    );
    if (!failed.length) return `${table}\nno permanently failed jobs`;
    const errors = formatTable(
      ["job", "task", "attempts", "last error"],
      failed.map((f) => [f.id, f.task, String(f.attempts), oneLine(f.last_error ?? "", 100)]),
    );
    return `${table}\n\npermanently failed jobs (newest ${failed.length}):\n${errors}`;
  },
};

export interface QueueWorker {
  id: string;
  hostname: string;
  pid: number;
  started_at: Date;
  heartbeat_age_s: number;
  /** The heartbeat is older than the pool's TTL: its jobs are released by queue__reap_workers. */
  expired: boolean;
  jobs: number;
}

export const queueWorkersSection: StatusSection<QueueWorker[]> = {
  name: "queue_workers",
  title: "Job runners (worker pools by heartbeat)",
  async collect(db) {
    const { rows } = await db.query<QueueWorker>("select * from gk_private.queue_workers_list()");
    return rows;
  },
  render(rows) {
    if (!rows.length) return "no job runner registered";
    return formatTable(
      ["pool", "host", "pid", "started", "heartbeat", "jobs"],
      rows.map((w) => [
        w.id,
        w.hostname,
        String(w.pid),
        w.started_at.toISOString().replace(/\.\d+Z$/, "Z"),
        `${w.heartbeat_age_s.toFixed(0)}s ago${w.expired ? " (expired)" : ""}`,
        String(w.jobs),
      ]),
    );
  },
};

export interface LatestActivation {
  task: string;
  id: string;
  status: string;
  started_at: Date;
  duration_s: number | null;
  counts: Record<string, number>;
  details: Record<string, unknown>;
  error: string | null;
  item_errors: number;
}

export const activationsSection: StatusSection<LatestActivation[]> = {
  name: "activations",
  title: "Latest activation per periodic task",
  async collect(db) {
    // One row per task, each activation read by primary key (gk_private.activation_tasks).
    const { rows } = await db.query<LatestActivation>(`
      select task, id::text, status, started_at, extract(epoch from finished_at - started_at)::float8 as duration_s,
             counts, details, error, item_errors
        from gk_private.activations_latest() where id is not null`);
    return rows;
  },
  render(rows) {
    return formatTable(
      ["task", "status", "started", "took", "counts", "item errors", "error"],
      rows.map((a) => [
        a.task,
        a.status,
        a.started_at.toISOString().replace(/\.\d+Z$/, "Z"),
        a.duration_s == null ? "-" : `${a.duration_s.toFixed(1)}s`,
        Object.entries(a.counts)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ") || "-",
        String(a.item_errors),
        oneLine(a.error ?? "", 60) || "-",
      ]),
    );
  },
};

/** The platform's sections, shown before the areas' own. */
export const statusSections: StatusSection<any>[] = [jobsSection, queueWorkersSection, activationsSection];

export async function collectStatus(db: Queryable, sections = statusSections): Promise<Record<string, unknown>> {
  const data = await Promise.all(sections.map((s) => s.collect(db)));
  return Object.fromEntries(sections.map((s, i) => [s.name, data[i]]));
}

export function renderStatus(data: Record<string, unknown>, sections = statusSections): string {
  return sections.map((s) => `== ${s.title} ==\n${s.render(data[s.name])}`).join("\n\n");
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
