-- Up Migration
-- When the coordinator last verified live attachments with their nodes. An activation cut short
-- by max_items leaves verify to the one that finishes the backlog, unless the last verify is
-- older than the coordinator's verify_every_seconds: a backlog that never ends cannot starve it
-- (gk_private.exports_verify_claim, sql/700_exports.sql). NULL: never (the next activation does).
alter table gk_private.export_sweeps add column last_verify_at timestamptz;

-- Down Migration
drop function if exists gk_private.exports_verify_claim(interval, boolean);
alter table gk_private.export_sweeps drop column last_verify_at;
