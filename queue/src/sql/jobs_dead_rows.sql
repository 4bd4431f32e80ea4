-- Dead and live row versions of bosun.jobs, as the statistics collector last heard (about a
-- second behind), whether a vacuum of the table is running now, and whether this role may
-- vacuum it (only its owner may: a member of bosun_worker leaves it to autovacuum).
SELECT coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_live_tup, 0) AS live,
       EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS v
               WHERE v.relid = 'bosun.jobs'::regclass) AS vacuuming,
       pg_has_role(current_user, c.relowner, 'USAGE') AS may_vacuum
FROM pg_class AS c
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = 'bosun.jobs'::regclass
