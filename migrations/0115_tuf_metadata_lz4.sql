-- Up Migration
-- Signed documents are compressed when stored (TOAST, over ~2 KB). A bin of a large repository is
-- tens of KB (a 256-bin bin of 100,000 targets: ~53 KB), and pglz compressing it was most of the
-- extra cost of re-signing it (insert of one such document: pglz 7.3 ms, lz4 4.0 ms, median of
-- 300 alternated, docs/benchmarks.md). lz4 compresses and decompresses (uploads read the
-- documents back) several times faster. New rows only; a server built without lz4 keeps pglz.
do $$
begin
  alter table gk_public.tuf_metadata alter column document set compression lz4;
exception when feature_not_supported then
  raise notice 'this PostgreSQL has no lz4: gk_public.tuf_metadata.document stays pglz';
end $$;
