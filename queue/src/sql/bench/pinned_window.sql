-- W5: jobs completed from $1 up to $2, and the 50th and 99th percentiles of the
-- milliseconds from each one's enqueue (created_at) to its claim (attempted_at). Walks
-- jobs_finalized_idx over the window only.
SELECT count(*),
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0),
       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0)
FROM (SELECT extract(epoch FROM j.attempted_at - j.created_at) * 1000 AS ms
      FROM bosun.jobs AS j
      WHERE j.state = 'completed' AND j.finalized_at >= $1 AND j.finalized_at < $2) AS l
