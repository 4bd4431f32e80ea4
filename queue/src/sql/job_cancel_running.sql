-- The handler cancelled its own job ($3: the reason). Fenced.
UPDATE bosun.jobs
SET state = 'cancelled', finalized_at = now(),
    errors = errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', now(), 'error', $3::text,
        'worker', attempted_by, 'kind', 'cancelled'))
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING state, NULL::float8
