-- How many transactions old the oldest snapshot is that this role can see holding the vacuum
-- horizon back: other sessions' (visible in full only to their own role, superusers and
-- pg_read_all_stats), replication slots' and prepared transactions'. 0 if none.
SELECT coalesce(max(age(h.x)), 0)::bigint
FROM (SELECT a.backend_xmin AS x FROM pg_stat_activity AS a
      WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
      UNION ALL
      SELECT s.xmin FROM pg_replication_slots AS s WHERE s.xmin IS NOT NULL
      UNION ALL
      SELECT p.transaction FROM pg_prepared_xacts AS p) AS h
