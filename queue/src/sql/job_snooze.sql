-- The handler asked to run again in $3 milliseconds. A snooze is not a failure, so the job
-- gets one more attempt (max_attempts + 1) instead of reusing `attempt`, which must only grow:
-- it is the fencing token. Fenced.
UPDATE bosun.jobs
SET state = 'scheduled',
    scheduled_at = now() + make_interval(secs => $3::float8 / 1000.0),
    max_attempts = max_attempts + 1
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING state
