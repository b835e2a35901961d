-- Up Migration
-- Signed documents are compressed when stored (TOAST, over ~2 KB). A bin of a large repository is
-- tens of KB (a 256-bin bin of 100,000 targets: ~59 KB), and pglz compressing it was a large part
-- of the extra cost of re-signing it (storing one: pglz 1.29 ms, lz4 0.39 ms, median of 100
-- alternated, bench/tuf.ts, docs/benchmarks.md). lz4 also decompresses faster (uploads read the
-- documents back). New rows only; a server built without lz4 (the embedded one) keeps pglz.
do $$
begin
  alter table gk_public.tuf_metadata alter column document set compression lz4;
exception when feature_not_supported then
  raise notice 'this PostgreSQL has no lz4: gk_public.tuf_metadata.document stays pglz';
end $$;

-- Down Migration
alter table gk_public.tuf_metadata alter column document set compression default;
