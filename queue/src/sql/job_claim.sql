-- Claim up to $2 due jobs of queue $1 whose kind is one of $3, for worker $4.
--
-- The CTE is an optimization fence: it picks and locks at most LIMIT rows, skipping rows that
-- another worker is locking right now (SKIP LOCKED), so concurrent claimers never wait on each
-- other and the UPDATE touches exactly the rows picked. The scan walks jobs_claimable_idx in
-- claim order (priority, scheduled_at, id). A paused queue yields nothing. Every claim bumps
-- `attempt`, the fencing token of this worker's later writes.
WITH picked AS (
    SELECT id
    FROM bosun.jobs
    WHERE queue = $1
      AND state IN ('available', 'scheduled', 'retryable')
      AND scheduled_at <= now()
      AND kind = ANY($3)
      AND NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = $1 AND q.paused)
    ORDER BY priority, scheduled_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE bosun.jobs AS j
SET state = 'running',
    attempt = j.attempt + 1,
    attempted_at = now(),
    attempted_by = $4
FROM picked
WHERE j.id = picked.id
RETURNING j.*
