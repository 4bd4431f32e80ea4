-- Bytes of bosun.jobs' heap, and of each of its valid indexes by name (schema-qualified and
-- quoted, ready for REINDEX) with the entries it held at its last vacuum or build
-- (pg_class.reltuples, -1 if never counted), for the compactor.
SELECT format('%I.%I', n.nspname, i.relname) AS name,
       pg_relation_size(i.oid) AS bytes,
       i.reltuples::float8 AS entries
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_namespace AS n ON n.oid = i.relnamespace
WHERE x.indrelid = 'bosun.jobs'::regclass AND x.indisvalid
UNION ALL
SELECT '', pg_relation_size('bosun.jobs'), -1
ORDER BY 1
