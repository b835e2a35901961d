// Prometheus metrics, computed from SQL at scrape time. The platform's collectors (job queue,
// activations) are here; areas add theirs through their manifest's `metrics`.
import prom from "prom-client";
import type pg from "pg";

export interface CollectorContext {
  db: Pick<pg.Pool, "query">;
  /** A gauge of this registry, created on first use and reset at every scrape (stale label sets vanish). */
  gauge(name: string, help: string, labelNames?: string[]): prom.Gauge<string>;
}

export interface MetricCollector {
  name: string;
  collect(ctx: CollectorContext): Promise<void>;
}

/** Queue depth, running, retrying and permanently failed jobs, per task (graphile_worker.jobs, sql/040_queue.sql). */
export const jobMetrics: MetricCollector = {
  name: "jobs",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{
      task: string;
      ready: number;
      scheduled: number;
      running: number;
      retrying: number;
      failed: number;
      oldest_due_s: number | null;
    }>("select * from gk_private.queue_jobs_by_task()");
    const queued = gauge("gk_job_queue_depth", "Jobs waiting or running (not permanently failed), by task", ["task"]);
    const running = gauge("gk_jobs_running", "Jobs currently locked by a worker, by task", ["task"]);
    const retrying = gauge("gk_jobs_retrying", "Jobs that failed at least once and will be retried, by task", ["task"]);
    const failed = gauge("gk_jobs_failed", "Jobs that exhausted their attempts (permanently failed), by task", ["task"]);
    const oldest = gauge("gk_job_oldest_due_seconds", "Age of the oldest job that is due and not yet done, by task", ["task"]);
    for (const r of rows) {
      queued.set({ task: r.task }, r.ready + r.scheduled + r.running);
      running.set({ task: r.task }, r.running);
      retrying.set({ task: r.task }, r.retrying);
      failed.set({ task: r.task }, r.failed);
      if (r.oldest_due_s != null) oldest.set({ task: r.task }, r.oldest_due_s);
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
  render(): Promise<string>;
}

export function createMetrics(db: Pick<pg.Pool, "query">, list: MetricCollector[] = collectors): Metrics {
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry, prefix: "gk_process_" });
  const gauges = new Map<string, prom.Gauge<string>>();
  const gauge = (name: string, help: string, labelNames: string[] = []) => {
    let g = gauges.get(name);
    if (!g) {
      g = new prom.Gauge({ name, help, labelNames, registers: [registry] });
      gauges.set(name, g);
    }
    return g;
  };
  const up = gauge("gk_metrics_collector_up", "1 when the collector's queries succeeded at this scrape", ["collector"]);
  return {
    contentType: registry.contentType,
    async render() {
      for (const g of gauges.values()) g.reset();
      // A failing collector must not hide the others: it reports up=0 and its error is logged by the caller.
      const results = await Promise.allSettled(list.map((c) => c.collect({ db, gauge })));
      const failures: string[] = [];
      results.forEach((r, i) => {
        up.set({ collector: list[i].name }, r.status === "fulfilled" ? 1 : 0);
        if (r.status === "rejected") failures.push(`${list[i].name}: ${(r.reason as Error)?.message ?? r.reason}`);
      });
      const text = await registry.metrics();
      if (failures.length) throw Object.assign(new MetricsPartialError(failures.join("; ")), { text });
      return text;
    },
  };
}

/** Some collectors failed; `text` still holds everything the others produced. */
export class MetricsPartialError extends Error {
  override name = "MetricsPartialError";
  text = "";
}
