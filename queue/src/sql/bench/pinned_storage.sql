-- W5: dead row versions of bosun.jobs (the statistics' estimate), and the bytes of its
-- heap and of its indexes, summed over the table and whatever partitions it has.
SELECT coalesce(sum(s.n_dead_tup), 0)::bigint,
       coalesce(sum(pg_relation_size(r.relid)), 0)::bigint,
       coalesce(sum(pg_indexes_size(r.relid)), 0)::bigint
FROM (SELECT 'bosun.jobs'::regclass AS relid
      UNION
      SELECT t.relid FROM pg_partition_tree('bosun.jobs') AS t) AS r
LEFT JOIN pg_stat_user_tables AS s ON s.relid = r.relid
