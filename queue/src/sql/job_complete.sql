-- A handler succeeded. Fenced: only the worker holding attempt $2 of a running job may write.
-- The second column (when the job runs again) is for the shape every outcome write shares.
UPDATE bosun.jobs
SET state = 'completed', finalized_at = now()
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING state, NULL::float8
