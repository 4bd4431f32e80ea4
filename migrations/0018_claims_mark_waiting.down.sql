-- Bosun 0018 down: the claim takes no part in marking workers as waiting (bosun.worker_waits does).
DROP FUNCTION bosun.claim_jobs(text, bigint, text[], text, boolean);

CREATE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text)
    RETURNS SETOF bosun.jobs LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
    RETURN QUERY
    WITH claimed AS (
        UPDATE bosun.jobs AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = worker
        WHERE j.id = ANY(ARRAY(
            SELECT c.id
            FROM bosun.jobs AS c
            WHERE c.queue = queue_name
              AND c.state IN ('available', 'scheduled', 'retryable')
              AND c.scheduled_at <= now()
              AND c.kind = ANY(kinds)
              AND NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = queue_name AND q.paused)
            ORDER BY c.priority, c.scheduled_at, c.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING j.*
    )
    SELECT * FROM claimed AS r ORDER BY r.priority, r.scheduled_at, r.id;
    -- Claiming, the worker is awake: enqueues need not wake it until it marks itself again.
    IF FOUND THEN
        DELETE FROM bosun.waiting_workers AS w
        WHERE w.queue = queue_name AND w.worker = claim_jobs.worker;
    END IF;
END;
$$;
