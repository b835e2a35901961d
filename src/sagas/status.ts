// Sagas in `groundskeeper status`: how many are in progress by name and state, and the ones that
// need an operator's eye (oldest first: undos that keep failing, sagas running for long).
import { formatAge } from "../bin/status.ts";
import { formatTable } from "../cli/format.ts";
import type { StatusSection } from "../cli/status/sections.ts";

export interface SagaSummary {
  name: string;
  state: string;
  sagas: number;
  oldest_age_seconds: number;
  undo_failing: number;
}

export interface SagaInProgress {
  id: string;
  name: string;
  state: string;
  step_name: string | null;
  age_seconds: number;
  error: string | null;
}

export const sagasSection: StatusSection<{ summary: SagaSummary[]; oldest: SagaInProgress[] }> = {
  name: "sagas",
  title: "Sagas in progress",
  async collect(db) {
    const summary = await db.query<SagaSummary>("select * from gk_public.saga_summary order by name, state");
    const oldest = await db.query<SagaInProgress>(`
      select s.id, s.name, s.state, s.steps[s.step + 1] as step_name,
             extract(epoch from now() - s.created_at)::float8 as age_seconds,
             coalesce(s.undo_error, s.error) as error
        from gk_public.sagas s where s.finished_at is null
       order by s.created_at limit 10`);
    return { summary: summary.rows, oldest: oldest.rows };
  },
  render({ summary, oldest }) {
    if (!summary.length) return "none";
    const table = formatTable(
      ["saga", "state", "in progress", "oldest", "undo failing"],
      summary.map((s) => [s.name, s.state, String(s.sagas), formatAge(s.oldest_age_seconds), String(s.undo_failing)]),
    );
    const list = formatTable(
      ["id", "saga", "state", "at step", "age", "error"],
      oldest.map((s) => [s.id, s.name, s.state, s.step_name ?? "-", formatAge(s.age_seconds), (s.error ?? "-").slice(0, 80)]),
    );
    return `${table}\n\noldest ${oldest.length}:\n${list}`;
  },
};
