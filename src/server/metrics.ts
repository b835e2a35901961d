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

/** Queue depth, running, retrying and permanently failed jobs, per task. */
export const jobMetrics: MetricCollector = {
  name: "jobs",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{
      task: string;
      queued: number;
      running: number;
      retrying: number;
      failed: number;
      oldest_due_s: number | null;
    }>(`
      select t.identifier as task,
             count(*) filter (where j.attempts < j.max_attempts)::int as queued,
             count(*) filter (where j.locked_at is not null and j.attempts < j.max_attempts)::int as running,
             count(*) filter (where j.attempts > 0 and j.attempts < j.max_attempts and j.last_error is not null)::int as retrying,
             count(*) filter (where j.attempts >= j.max_attempts)::int as failed,
             extract(epoch from now() - min(j.run_at) filter (where j.attempts < j.max_attempts and j.run_at <= now()))::float8 as oldest_due_s
        from graphile_worker._private_jobs j
        join graphile_worker._private_tasks t on t.id = j.task_id
       group by t.identifier`);
    const queued = gauge("gk_job_queue_depth", "Jobs waiting or running (not permanently failed), by task", ["task"]);
    const running = gauge("gk_jobs_running", "Jobs currently locked by a worker, by task", ["task"]);
    const retrying = gauge("gk_jobs_retrying", "Jobs that failed at least once and will be retried, by task", ["task"]);
    const failed = gauge("gk_jobs_failed", "Jobs that exhausted their attempts (permanently failed), by task", ["task"]);
    const oldest = gauge("gk_job_oldest_due_seconds", "Age of the oldest job that is due and not yet done, by task", ["task"]);
    for (const r of rows) {
      queued.set({ task: r.task }, r.queued);
      running.set({ task: r.task }, r.running);
      retrying.set({ task: r.task }, r.retrying);
      failed.set({ task: r.task }, r.failed);
      if (r.oldest_due_s != null) oldest.set({ task: r.task }, r.oldest_due_s);
    }
  },
};

/** Reconciler activations by task and status, and when each task last succeeded. */
export const activationMetrics: MetricCollector = {
  name: "activations",
  async collect({ db, gauge }) {
    const { rows } = await db.query<{ task: string; status: string; n: number; last_finished: number | null }>(`
      select task, status, count(*)::int as n, extract(epoch from max(finished_at))::float8 as last_finished
        from gk_public.activations group by task, status`);
    const count = gauge("gk_activations", "Recorded reconciler activations, by task and status", ["task", "status"]);
    const lastOk = gauge("gk_activation_last_success_timestamp_seconds", "When each task's last successful activation finished", ["task"]);
    for (const r of rows) {
      count.set({ task: r.task, status: r.status }, r.n);
      if (r.status === "succeeded" && r.last_finished != null) lastOk.set({ task: r.task }, r.last_finished);
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
