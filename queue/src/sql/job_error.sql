-- An attempt failed ($5: message, $6: what kind of failure). The job becomes `failed` when the
-- error is permanent ($3) or it has used its attempts; otherwise `retryable` at now() plus the
-- backoff $4 (milliseconds, at most about a hundred years: the caller saturates it) with
-- +/-10% jitter, so jobs that failed together do not all retry in the same instant. Times
-- come from the database clock. Fenced like every write. Returns the new state and, for a
-- retry, the seconds until it is due, so that the worker can wake for it.
UPDATE bosun.jobs
SET state = CASE WHEN $3 OR attempt >= max_attempts THEN 'failed'
                 ELSE 'retryable' END::bosun.job_state,
    scheduled_at = CASE WHEN $3 OR attempt >= max_attempts THEN scheduled_at
                        ELSE now() + make_interval(secs => $4::float8 / 1000.0 * (0.9 + random() * 0.2))
                   END,
    finalized_at = CASE WHEN $3 OR attempt >= max_attempts THEN now() END,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', now(), 'error', $5::text,
        'worker', attempted_by, 'kind', $6::text))
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING state,
          CASE WHEN state = 'retryable' THEN extract(epoch FROM scheduled_at - now())::float8 END
