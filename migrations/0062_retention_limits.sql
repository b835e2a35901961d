-- Up Migration
-- Every prune is bounded per activation: gk_private.retention_prune__<kind>(cutoff, max_rows)
-- removes at most max_per_activation rows and the sweep says when more remains (the rest goes at
-- the next activation). New kinds: the reconcilers' history, and permanently failed jobs once they
-- have been inspectable for a while (so gk_jobs_failed can clear).
alter table gk_public.retention_policies
  add column max_per_activation int not null default 10000 check (max_per_activation between 1 and 1000000);
comment on column gk_public.retention_policies.max_per_activation is 'At most this many rows are pruned per activation of the sweep; the rest goes next time.';

insert into gk_public.retention_policies (kind, retention, description) values
  ('activations', interval '14 days', 'Reconciler activations (and their item errors) older than this are deleted; the latest of each task is kept.'),
  ('failed_jobs', interval '7 days', 'Permanently failed jobs are deleted this long after they failed (inspect them in `groundskeeper status` until then).')
on conflict (kind) do nothing;

-- Down Migration
delete from gk_public.retention_policies where kind in ('activations', 'failed_jobs');
alter table gk_public.retention_policies drop column max_per_activation;
