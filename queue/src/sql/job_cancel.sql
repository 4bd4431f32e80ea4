-- Cancel job $1 unless it finished; see bosun.cancel_job.
SELECT * FROM bosun.cancel_job($1)
