-- Up Migration
-- Certificates of the local CA are kept until long after they expire (a CRL lists a revoked one
-- until a day after its expiry); the retention sweep then deletes them through
-- gk_private.retention_prune__local_ca_certificates (sql/201_local_ca_retention.sql).
create index local_ca_certificates_not_after_idx on gk_private.local_ca_certificates (not_after)
  where status <> 'pending';

insert into gk_public.retention_policies (kind, retention, description)
values ('local_ca_certificates', interval '90 days',
        'Local CA certificates, counted from their expiry (notAfter).')
on conflict (kind) do nothing;

-- Down Migration
delete from gk_public.retention_policies where kind = 'local_ca_certificates';
drop index gk_private.local_ca_certificates_not_after_idx;
