-- Up Migration
-- The bin reconciler's task was renamed purge__reconcile → bin__reconcile (the bin is its own
-- area). Workers of this release have no task purge__reconcile, so its pending cron job would
-- wait forever: remove it through graphile-worker's public remove_job (a job a worker of the
-- previous release is running keeps running; remove_job only stops it from being retried).
-- The crontab schedules bin__reconcile from now on. Its history keeps one name.
select graphile_worker.remove_job('purge__reconcile');
update gk_public.activations set task = 'bin__reconcile' where task = 'purge__reconcile';

-- Down Migration
select graphile_worker.remove_job('bin__reconcile');
update gk_public.activations set task = 'purge__reconcile' where task = 'bin__reconcile';
