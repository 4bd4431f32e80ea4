-- Bytes of bosun.jobs' heap, and of each of its valid indexes by name (schema-qualified and
-- quoted, ready for REINDEX), for the compactor.
SELECT format('%I.%I', n.nspname, i.relname) AS name,
       pg_relation_size(i.oid) AS bytes
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_namespace AS n ON n.oid = i.relnamespace
WHERE x.indrelid = 'bosun.jobs'::regclass AND x.indisvalid
UNION ALL
SELECT '', pg_relation_size('bosun.jobs')
ORDER BY 1
