-- Up Migration
-- Write-ahead progress for purges: before a page of keys is deleted its last key and the new
-- count are recorded (progress_pending_until, progress_count), after it is deleted the cursor
-- (progress_after). A purge killed in between resumes from progress_after without counting the
-- keys up to progress_pending_until twice, so progress_count is exact (src/adapters/blobs/purge-prefix.ts).
alter table gk_public.purge_items add column progress_pending_until text check (length(progress_pending_until) <= 2048);
comment on column gk_public.purge_items.progress_pending_until is 'Keys up to here are counted in progress_count (their deletion may not have landed yet; a resume re-deletes them without counting).';

-- Down Migration
alter table gk_public.purge_items drop column progress_pending_until;
