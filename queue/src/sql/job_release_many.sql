-- Graceful shutdown: hand back jobs whose handlers did not finish in time, as (id, attempt)
-- pairs. They become available at once and the interrupted attempt does not count against
-- max_attempts (which grows by one, up to the most a job may have: a job already there has
-- no attempt to give back, and fails with an error saying so). Fenced per pair; wakes the
-- queues' workers.
WITH released AS (
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN j.attempt < 1000000000 THEN 'available'
                     ELSE 'failed' END::bosun.job_state,
        scheduled_at = CASE WHEN j.attempt < 1000000000 THEN now() ELSE j.scheduled_at END,
        max_attempts = least(j.max_attempts + 1, 1000000000),
        finalized_at = CASE WHEN j.attempt < 1000000000 THEN NULL ELSE now() END,
        errors = CASE WHEN j.attempt < 1000000000 THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(),
                          'error', 'handed back, but the job has used the most attempts a job may have (1000000000)',
                          'worker', j.attempted_by, 'kind', 'handed_back'))
                 END
    FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt)
    WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running'
    RETURNING j.id, j.queue, j.state
), woken AS (
    SELECT bosun.notify_queues(ARRAY(
        SELECT DISTINCT queue FROM released WHERE state = 'available'))
)
SELECT released.id FROM released, woken WHERE released.state = 'available'
