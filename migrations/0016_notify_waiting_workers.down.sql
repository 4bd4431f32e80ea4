-- Bosun 0016 down: every insert statement notifies; claims leave no marks to remove.
DROP TRIGGER jobs_wake_waiting ON bosun.jobs;
DROP FUNCTION bosun.jobs_wake_waiting();
DROP FUNCTION bosun.worker_waits(text, text);

CREATE FUNCTION bosun.jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bosun.notify_inserts', true) = 'off' THEN
        RETURN NULL;
    END IF;
    PERFORM bosun.notify_queues(ARRAY(
        SELECT DISTINCT queue FROM inserted WHERE scheduled_at <= now()
    ));
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert
    AFTER INSERT ON bosun.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION bosun.jobs_notify_insert();

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

DROP TABLE bosun.waiting_workers;
