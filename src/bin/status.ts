// The bin in `groundskeeper status`: every pending deletion by kind, with the oldest age, and the
// `--watch` loop that shows a progress bar while it drains to zero.
import { formatTable } from "../cli/format.ts";
import type { Queryable, StatusSection } from "../cli/status/sections.ts";

export interface BinKind {
  kind: string;
  length: number;
  failing: number;
  overdue: number;
  oldest_age_seconds: number | null;
}

export const binSection: StatusSection<BinKind[]> = {
  name: "bin",
  title: "Bin (pending deletions)",
  async collect(db) {
    const { rows } = await db.query<BinKind>(
      "select kind, length, failing, overdue, oldest_age_seconds from gk_public.bin_summary order by kind",
    );
    return rows;
  },
  render(rows) {
    if (rows.length === 0) return "empty: nothing pending";
    const total = rows.reduce((n, r) => n + r.length, 0);
    const table = formatTable(
      ["kind", "pending", "failing", "overdue", "oldest"],
      rows.map((r) => [r.kind, String(r.length), String(r.failing), String(r.overdue), formatAge(r.oldest_age_seconds)]),
    );
    const overdue = rows.reduce((n, r) => n + r.overdue, 0);
    // Overdue items are held by no live task and nobody recorded why: say so, not just count.
    const warning = overdue > 0 ? `\n${overdue} overdue: past their lease with no live task (workers down or cut off?)` : "";
    return `${table}\ntotal ${total}${warning}`;
  },
  async watch(db, opts) {
    const drained = await watchBin(db, opts);
    return opts.signal?.aborted ? `stopped; ${drained} drained so far` : `bin empty (${drained} drained)`;
  },
};

export function formatAge(seconds: number | null): string {
  if (seconds == null) return "-";
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)}h`;
  return `${(seconds / 86400).toFixed(1)}d`;
}

export async function binTotal(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select coalesce(sum(length), 0)::int as n from gk_public.bin_summary");
  return rows[0].n;
}

/**
 * Polls the bin and draws a progress bar (items drained since the start / the largest length
 * seen) until it is empty. Resolves with the number drained; `signal` stops it early.
 */
export async function watchBin(
  db: Queryable,
  opts: { intervalMs?: number; stream?: NodeJS.WritableStream; signal?: AbortSignal } = {},
): Promise<number> {
  const interval = opts.intervalMs ?? 1000;
  // Loaded here: every CLI command loads this file through src/areas.ts; only --watch draws.
  const { default: cliProgress } = await import("cli-progress");
  let peak = await binTotal(db);
  const bar = new cliProgress.SingleBar(
    {
      format: "bin {bar} {percentage}% | {value}/{total} drained | {pending} pending | oldest {oldest}",
      stream: opts.stream ?? process.stderr,
      // Keep drawing when stderr is not a terminal (logs, tests): one line per update.
      noTTYOutput: true,
      notTTYSchedule: interval,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(peak, 1), 0, { pending: peak, oldest: "-" });
  let drained = 0;
  try {
    for (;;) {
      const kinds = await binSection.collect(db);
      const pending = kinds.reduce((n, k) => n + k.length, 0);
      peak = Math.max(peak, pending);
      drained = peak - pending;
      const oldest = Math.max(-1, ...kinds.map((k) => k.oldest_age_seconds ?? -1));
      bar.setTotal(Math.max(peak, 1));
      bar.update(pending === 0 ? Math.max(peak, 1) : drained, { pending, oldest: oldest < 0 ? "-" : formatAge(oldest) });
      if (pending === 0 || opts.signal?.aborted) return drained;
      await new Promise((r) => setTimeout(r, interval));
    }
  } finally {
    bar.stop();
  }
}
