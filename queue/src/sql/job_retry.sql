-- Run job $1 again now; see bosun.retry_job.
SELECT * FROM bosun.retry_job($1)
