-- W3: how many handlers wrote their start, and the 50th, 95th and 99th percentiles of the
-- milliseconds from each job's creation to its handler's start.
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
FROM (SELECT extract(epoch FROM s.started_at - j.created_at) * 1000 AS ms
      FROM bosun.jobs AS j JOIN bosun_bench_handler_starts AS s ON s.job_id = j.id) AS l
