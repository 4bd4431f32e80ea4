-- Retry every job in state $3, of queue $1 and kind $2 when given; see bosun.retry_jobs.
SELECT * FROM bosun.retry_jobs($1, $2, $3)
