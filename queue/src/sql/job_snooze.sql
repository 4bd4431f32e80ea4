-- The handler asked to run again in $3 milliseconds (at most about a hundred years: the
-- caller saturates it). A snooze is not a failure, so the job gets one more attempt
-- (max_attempts + 1) instead of reusing `attempt`, which must only grow: it is the fencing
-- token. A job already at the most attempts a job may have (1,000,000,000) has none to give,
-- and fails with an error saying so. Fenced. Returns the new state and, when it waits, the
-- seconds until it is due, so that the worker can wake for it.
UPDATE bosun.jobs
SET state = CASE WHEN attempt < 1000000000 THEN 'scheduled' ELSE 'failed' END::bosun.job_state,
    scheduled_at = CASE WHEN attempt < 1000000000
                        THEN now() + make_interval(secs => $3::float8 / 1000.0)
                        ELSE scheduled_at END,
    max_attempts = least(max_attempts + 1, 1000000000),
    finalized_at = CASE WHEN attempt < 1000000000 THEN NULL ELSE now() END,
    errors = CASE WHEN attempt < 1000000000 THEN errors
                  ELSE errors || jsonb_build_array(jsonb_build_object(
                      'attempt', attempt, 'at', now(),
                      'error', 'snoozed, but the job has used the most attempts a job may have (1000000000)',
                      'worker', attempted_by, 'kind', 'snooze'))
             END
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING state,
          CASE WHEN state = 'scheduled' THEN extract(epoch FROM scheduled_at - now())::float8 END
