-- Bosun 0004 down: claims walk each queue from its head again (bosun.claim_jobs as 0002 has
-- it); the floors, their triggers and functions go.
DROP TRIGGER jobs_claim_floor ON bosun.jobs;
DROP TRIGGER jobs_claim_floor_early ON bosun.jobs;
DROP FUNCTION bosun.claim_floor_lower();
DROP FUNCTION bosun.advance_claim_floor(text, integer);
DROP TABLE bosun.claim_floors;
CREATE OR REPLACE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean DEFAULT false)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
DECLARE
    may_mark     boolean := false;
    lock_timeout_was text;
    taken        bigint;
BEGIN
    IF queue_name IS NULL OR max_jobs IS NULL OR kinds IS NULL OR worker IS NULL OR wait IS NULL THEN
        RAISE EXCEPTION 'bosun.claim_jobs: % must not be null',
            CASE WHEN queue_name IS NULL THEN 'queue_name' WHEN max_jobs IS NULL THEN 'max_jobs'
                 WHEN kinds IS NULL THEN 'kinds' WHEN worker IS NULL THEN 'worker' ELSE 'wait' END
            USING ERRCODE = '22004';
    END IF;
    IF max_jobs < 0 THEN
        RAISE EXCEPTION 'bosun.claim_jobs: max_jobs must not be negative, got %', max_jobs
            USING ERRCODE = '22023';
    END IF;
    -- Claims of one worker on one queue take turns. Whether this one waited for another's
    -- turn is noted for the caller: that other claim took the due jobs first.
    IF pg_try_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name)) THEN
        PERFORM set_config('bosun.claim_waited', 'off', true);
    ELSE
        PERFORM set_config('bosun.claim_waited', 'on', true);
        PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
    END IF;
    IF wait THEN
        lock_timeout_was := current_setting('lock_timeout');
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
            may_mark := true;
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'bosun.claim_jobs: inserts into queue % held its waiting lock for 200 ms; worker % is not marked as waiting and polls', queue_name, worker;
        END;
        PERFORM set_config('lock_timeout', lock_timeout_was, true);
    END IF;
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
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF may_mark AND taken < max_jobs THEN
        -- Room left and no job left: inserts into the queue wake this worker from now on.
        INSERT INTO bosun.waiting_workers AS w (queue, worker)
        VALUES (queue_name, claim_jobs.worker)
        ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO NOTHING;
    ELSIF taken > 0 THEN
        -- Claiming, the worker is awake: enqueues need not wake it until it marks itself again.
        DELETE FROM bosun.waiting_workers AS w
        WHERE w.queue = queue_name AND w.worker = claim_jobs.worker;
    END IF;
END;
$function$;
