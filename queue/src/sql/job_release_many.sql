-- Graceful shutdown: hand back jobs whose handlers did not finish in time, as (id, attempt)
-- pairs. They become available at once and the interrupted attempt does not count against
-- max_attempts. Fenced per pair; wakes the queues' workers.
WITH released AS (
    UPDATE bosun.jobs AS j
    SET state = 'available', scheduled_at = now(), max_attempts = j.max_attempts + 1
    FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt)
    WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running'
    RETURNING j.id, j.queue
), woken AS (
    SELECT bosun.notify_queues(ARRAY(SELECT DISTINCT queue FROM released))
)
SELECT released.id FROM released, woken
