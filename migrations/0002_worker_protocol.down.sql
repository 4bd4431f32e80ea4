DROP FUNCTION bosun.give_back_jobs(bigint[], integer[]);
DROP FUNCTION bosun.lost_jobs(bigint[], integer[]);
DROP FUNCTION bosun.job_progress(bigint, integer, jsonb);
DROP FUNCTION bosun.snooze_job(bigint, integer, interval);
DROP FUNCTION bosun.fail_job(bigint, integer, text, boolean, interval, text);
DROP FUNCTION bosun.complete_job(bigint, integer);
DROP FUNCTION bosun.claim(text, text[], integer, text[], boolean);
DROP FUNCTION bosun.worker_deregister(text);
DROP FUNCTION bosun.worker_heartbeat(text, text[], text[], double precision, text, integer);
DROP FUNCTION bosun.protocol_version();
-- bosun.claim_jobs as the baseline has it.
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
    PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
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
