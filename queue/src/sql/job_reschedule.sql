-- Move waiting job $1 to run at $2; see bosun.reschedule_job.
SELECT * FROM bosun.reschedule_job($1, $2)
