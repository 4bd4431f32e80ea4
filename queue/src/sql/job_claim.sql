-- Claim up to $2 due jobs of queue $1 whose kind is one of $3, for worker $4.
--
-- The subquery picks and locks at most LIMIT rows, skipping rows that another worker is
-- locking right now (SKIP LOCKED), so concurrent claimers never wait on each other. It walks
-- jobs_claimable_idx in claim order (priority, scheduled_at, id). A paused queue yields
-- nothing. The UPDATE then finds the picked rows by primary key: `id = ANY(ARRAY(...))` runs
-- the subquery once and probes the key, a plan that does not depend on the table's
-- statistics (a join on the picked ids is planned as a scan of the whole table when the
-- statistics still describe an empty one). Every claim bumps `attempt`, the fencing token of
-- this worker's later writes. The claimed rows come back in claim order, the order in which
-- the worker starts them.
WITH claimed AS (
    UPDATE bosun.jobs AS j
    SET state = 'running',
        attempt = j.attempt + 1,
        attempted_at = now(),
        attempted_by = $4
    WHERE j.id = ANY(ARRAY(
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
    ))
    RETURNING j.*
)
SELECT * FROM claimed ORDER BY priority, scheduled_at, id
