-- Bosun 0018: a worker going idle marks itself as waiting in the claim that finds it idle.
--
-- Until now (0016) a worker whose claim came back short marked itself with
-- bosun.worker_waits, in a transaction of its own, and then claimed once more: three round
-- trips and three commits each time it ran out of work, which on an idle worker is every job.
-- Now the claim does both: asked to (`wait`), it takes the queue's waiting lock exclusively
-- first, so that every insert that checked for marks before it is committed and visible to
-- its claim, and every later one sees the mark it leaves when it comes back short. A claim
-- that fills its room removes the mark: its worker will claim again as soon as it has room.
--
-- The lock is awaited for at most 200 ms, as bosun.worker_waits did: a transaction that
-- fired its checks early (SET CONSTRAINTS ALL IMMEDIATE) holds it to its end. Past that the
-- claim goes on without it, leaves no mark, and warns; the worker then polls.
--
-- Workers of earlier versions call the function with four arguments and get what they got.
DROP FUNCTION bosun.claim_jobs(text, bigint, text[], text);

CREATE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text,
                                 wait boolean DEFAULT false)
    RETURNS SETOF bosun.jobs LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    may_mark     boolean := false;
    lock_timeout_was text;
    taken        bigint;
BEGIN
    IF wait IS NULL THEN
        RAISE EXCEPTION 'bosun.claim_jobs: wait must not be null' USING ERRCODE = '22004';
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
$$;
