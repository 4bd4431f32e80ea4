-- Indexes of bosun.jobs left invalid by a REINDEX CONCURRENTLY that did not finish (its
-- process was killed), while no index of the table is being built: they cost every write
-- and serve no read.
SELECT format('%I.%I', n.nspname, i.relname)
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_namespace AS n ON n.oid = i.relnamespace
WHERE x.indrelid = 'bosun.jobs'::regclass AND NOT x.indisvalid
  AND i.relname ~ '_cc(new|old)[0-9]*$'
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index AS p
                  WHERE p.relid = 'bosun.jobs'::regclass)
ORDER BY 1
