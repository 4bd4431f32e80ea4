-- Bosun 0014: one worker's claims on a queue run one after the other.
--
-- A worker may keep two claims of a queue in flight (one being answered and handled while
-- the other runs). Run side by side, the later claim skipped the rows the earlier one was
-- locking and took the next ones, and could come back first: its jobs then started before
-- earlier ones (priority and age order broken within a worker). Now the later claim waits,
-- inside the database, for the earlier one's commit, and then walks past the rows it took;
-- it still overlaps the earlier claim's reply and the worker's handling of it, which is
-- what the second claim is for. The lock is the worker's and the queue's: claims of
-- different workers never wait on each other (they skip each other's rows, as before).
-- The key is hashed; two workers whose keys collide just take turns.
CREATE OR REPLACE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text)
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
END;
$$;
