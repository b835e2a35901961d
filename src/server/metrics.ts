// Prometheus metrics, computed from SQL at scrape time. The platform's collectors (job queue,
// activations) are here; areas add theirs through their manifest's `metrics`.
import { createRequire } from "node:module";
import type Prom from "prom-client";
import type pg from "pg";
import { taskIdentifiers } from "../worker/task-list.ts";

export interface CollectorContext {
  db: Pick<pg.Pool, "query">;
  /** A gauge of this scrape's registry (created on first use; each scrape starts empty, so stale label sets vanish). */
  gauge(name: string, help: string, labelNames?: string[]): Prom.Gauge<string>;
}

export interface MetricCollector {
  name: string;
  collect(ctx: CollectorContext): Promise<void>;
}

/** Queue depth, running, retrying and permanently failed jobs, per task (graphile_worker.jobs, sql/060_queue.sql; every known task, 0 when idle). */
export const jobMetrics: MetricCollector = {
  name: "jobs",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{
      task: string;
      ready: number;
      scheduled: number;
      running: number;
      stalled: number;
      retrying: number;
      failed: number;
      oldest_due_s: number | null;
    }>("select * from gk_private.queue_jobs_by_task()");
    const queued = gauge("gk_job_queue_depth", "Jobs waiting or running (not permanently failed), by task", ["task"]);
    const running = gauge("gk_jobs_running", "Jobs currently locked by a live worker, by task", ["task"]);
    const stalled = gauge("gk_jobs_stalled", "Jobs locked by a worker whose heartbeat expired (released by queue__reap_workers), by task", [
      "task",
    ]);
    const retrying = gauge("gk_jobs_retrying", "Jobs that failed at least once and will be retried, by task", ["task"]);
    const failed = gauge("gk_jobs_failed", "Jobs that exhausted their attempts (permanently failed), by task", ["task"]);
    const oldest = gauge("gk_job_oldest_due_seconds", "Age of the oldest job that is due and not yet done, by task (0 when none)", [
      "task",
    ]);
    // Every task of tasks/ reports 0 when it has no jobs, so "failed > 0" alerts resolve and rates have a baseline.
    for (const task of taskIdentifiers()) for (const g of [queued, running, stalled, retrying, failed, oldest]) g.set({ task }, 0);
    for (const r of rows) {
      queued.set({ task: r.task }, r.ready + r.scheduled + r.running + r.stalled);
      running.set({ task: r.task }, r.running);
      stalled.set({ task: r.task }, r.stalled);
      retrying.set({ task: r.task }, r.retrying);
      failed.set({ task: r.task }, r.failed);
      oldest.set({ task: r.task }, r.oldest_due_s ?? 0);
    }
  },
};

/**
 * Reconciler activations: one row per task (gk_private.activations_latest reads each task's
 * latest activation by primary key, never the history). gk_activations counts finished
 * activations by final status and survives pruning, like a counter.
 */
export const activationMetrics: MetricCollector = {
  name: "activations",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{
      task: string;
      status: string | null;
      started_at: Date | null;
      finished_at: Date | null;
      last_success_at: Date | null;
      succeeded: string;
      failed: string;
    }>("select task, status, started_at, finished_at, last_success_at, succeeded, failed from gk_private.activations_latest()");
    const count = gauge("gk_activations", "Finished reconciler activations since the database was created, by task and status", [
      "task",
      "status",
    ]);
    const lastOk = gauge("gk_activation_last_success_timestamp_seconds", "When each task's last successful activation finished", ["task"]);
    const running = gauge("gk_activation_running", "1 while the task's latest activation is still running", ["task"]);
    const lastDuration = gauge("gk_activation_last_duration_seconds", "How long the task's latest finished activation took", ["task"]);
    for (const r of rows) {
      count.set({ task: r.task, status: "succeeded" }, Number(r.succeeded));
      count.set({ task: r.task, status: "failed" }, Number(r.failed));
      running.set({ task: r.task }, r.status === "running" ? 1 : 0);
      if (r.last_success_at) lastOk.set({ task: r.task }, r.last_success_at.getTime() / 1000);
      if (r.finished_at && r.started_at) lastDuration.set({ task: r.task }, (r.finished_at.getTime() - r.started_at.getTime()) / 1000);
    }
  },
};

/** The platform's collectors, run at every scrape before the areas' own. */
export const collectors: MetricCollector[] = [jobMetrics, activationMetrics];

export interface Metrics {
  contentType: string;
  /** The exposition text of one scrape; throws MetricsPartialError (with the text) when a collector failed. */
  render(): Promise<string>;
  /** Records one HTTP request (route: a bounded label such as "/graphql" or "/tuf/"). */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
}

export interface MetricsOptions {
  /** Labels of gk_build_info (version, …). */
  buildInfo?: Record<string, string>;
}

/**
 * Two registries: one for the life of the process (the client library's process_* and nodejs_*
 * metrics under their standard names, HTTP requests, build info) and a fresh one per scrape for
 * the gauges computed from SQL. A scrape never resets what another scrape is still filling, so
 * concurrent scrapes each return every series.
 */
export function createMetrics(db: Pick<pg.Pool, "query">, list: MetricCollector[] = collectors, opts: MetricsOptions = {}): Metrics {
  // Loaded here, not at the top: every CLI command loads this file (through src/areas.ts), and
  // prom-client brings OpenTelemetry with it; only a server that serves /metrics needs it.
  const prom = createRequire(import.meta.url)("prom-client") as typeof Prom;
  const processRegistry = new prom.Registry();
  prom.collectDefaultMetrics({ register: processRegistry });
  // prom-client also sums these gauges into *_total series, which Prometheus' naming rules (and
  // promtool) reserve for counters; the per-type gauges without the suffix stay.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    processRegistry.removeSingleMetric(name);
  }
  const requests = new prom.Counter({
    name: "gk_http_requests_total",
    help: "HTTP requests answered, by route (path prefix), method and status code",
    labelNames: ["route", "method", "code"],
    registers: [processRegistry],
  });
  const latency = new prom.Histogram({
    name: "gk_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by route (path prefix) and method",
    labelNames: ["route", "method"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [processRegistry],
  });
  const build = opts.buildInfo ?? {};
  new prom.Gauge({
    name: "gk_build_info",
    help: "Always 1; the labels tell which build of Groundskeeper answers",
    labelNames: Object.keys(build),
    registers: [processRegistry],
  }).set(build, 1);
  return {
    contentType: processRegistry.contentType,
    observeRequest(route, method, status, seconds) {
      const m = KNOWN_METHODS.has(method) ? method : "other";
      requests.inc({ route, method: m, code: String(status) });
      latency.observe({ route, method: m }, seconds);
    },
    async render() {
      const scrape = new prom.Registry();
      const gauges = new Map<string, Prom.Gauge<string>>();
      const gauge = (name: string, help: string, labelNames: string[] = []) => {
        let g = gauges.get(name);
        if (!g) {
          g = new prom.Gauge({ name, help, labelNames, registers: [scrape] });
          gauges.set(name, g);
        }
        return g;
      };
      const up = gauge("gk_metrics_collector_up", "1 when the collector's queries succeeded at this scrape", ["collector"]);
      // A failing collector must not hide the others: it reports up=0 and its error is logged by the caller.
      const results = await Promise.allSettled(list.map((c) => c.collect({ db, gauge })));
      const failures: string[] = [];
      results.forEach((r, i) => {
        up.set({ collector: list[i].name }, r.status === "fulfilled" ? 1 : 0);
        if (r.status === "rejected") failures.push(`${list[i].name}: ${(r.reason as Error)?.message ?? r.reason}`);
      });
      const text = await prom.Registry.merge([processRegistry, scrape]).metrics();
      if (failures.length) throw Object.assign(new MetricsPartialError(failures.join("; ")), { text });
      return text;
    },
  };
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Some collectors failed; `text` still holds everything the others produced. */
export class MetricsPartialError extends Error {
  override name = "MetricsPartialError";
  text = "";
}
