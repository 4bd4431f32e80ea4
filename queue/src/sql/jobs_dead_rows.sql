-- Dead and live row versions of bosun.jobs, as the statistics collector last heard (about a
-- second behind), and whether a vacuum of the table is running now.
SELECT coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_live_tup, 0) AS live,
       EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS v
               WHERE v.relid = 'bosun.jobs'::regclass) AS vacuuming
FROM (SELECT 1) AS one
LEFT JOIN pg_stat_user_tables AS s ON s.relid = 'bosun.jobs'::regclass
