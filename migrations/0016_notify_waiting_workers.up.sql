-- Bosun 0016: an insert wakes workers only when one is waiting for jobs on its queue.
--
-- A transaction that sent a NOTIFY takes, at commit, a lock of the whole database and holds
-- it while its commit is written to disk, so notifying commits run one at a time: eight
-- clients inserting one job per transaction committed half as many as with the
-- notification off. Workers that are busy need no wake-up (they claim again as soon as they
-- have room); only one about to sleep does. So a worker marks itself in
-- bosun.waiting_workers before it sleeps on a queue, then claims once more, and sleeps only
-- if that claim found nothing; a claim that takes jobs removes its worker's mark. An insert
-- notifies, at its commit, only when some worker is marked on its queue.
--
-- Why no wake-up is lost: the check is made at commit (a deferred trigger, once per queue
-- and transaction) under a shared lock of the queue's, held until the commit is done; a
-- worker marks itself under the same lock, exclusively. An insert that checked before the
-- mark is committed and visible before the mark is made, so the worker's next claim finds
-- its job; one that checks after sees the mark and notifies. The lock is held only during
-- commits and marks, never through a transaction's work.
--
-- The marks are unlogged: a server restart forgets them, and workers mark themselves again
-- after every wake-up (their LISTEN connection reconnects and wakes them).
CREATE UNLOGGED TABLE bosun.waiting_workers (
    queue  text NOT NULL,
    worker text NOT NULL,
    since  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, worker)
);

-- A worker about to sleep on a queue: from now on, inserts into it notify. It waits for the
-- inserts that are committing (they checked before the mark); not for long, since a
-- transaction that fired its checks early (SET CONSTRAINTS ALL IMMEDIATE) holds the lock to
-- its end, and inserts queue up behind a waiting mark: past the timeout the worker is not
-- marked and polls.
CREATE FUNCTION bosun.worker_waits(queue_name text, worker text) RETURNS void
    LANGUAGE plpgsql SET lock_timeout = '200ms' AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
    INSERT INTO bosun.waiting_workers AS w (queue, worker)
    VALUES (queue_name, worker_waits.worker)
    ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO UPDATE SET since = now();
END;
$$;

-- At commit, once per queue: notify if a worker waits on it.
CREATE FUNCTION bosun.jobs_wake_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bosun.notify_inserts', true) = 'off' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(hashtext('bosun.waiting_workers'), hashtext(NEW.queue));
    IF EXISTS (SELECT 1 FROM bosun.waiting_workers AS w WHERE w.queue = NEW.queue) THEN
        PERFORM bosun.notify_queues(ARRAY[NEW.queue]);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER jobs_notify_insert ON bosun.jobs;
DROP FUNCTION bosun.jobs_notify_insert();

-- The WHEN clause keeps one event per queue and transaction: the queues already queued are
-- listed in a transaction-local setting (queue names cannot contain commas). It is made of
-- built-in functions only, since it runs for every row of a bulk insert.
CREATE CONSTRAINT TRIGGER jobs_wake_waiting
    AFTER INSERT ON bosun.jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.scheduled_at <= now()
          AND strpos(coalesce(current_setting('bosun.wake_queues', true), ''),
                     ',' || NEW.queue || ',') = 0
          AND set_config('bosun.wake_queues',
                         coalesce(nullif(current_setting('bosun.wake_queues', true), ''), ',')
                             || NEW.queue || ',',
                         true) IS NOT NULL)
    EXECUTE FUNCTION bosun.jobs_wake_waiting();

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
    -- Claiming, the worker is awake: enqueues need not wake it until it marks itself again.
    IF FOUND THEN
        DELETE FROM bosun.waiting_workers AS w
        WHERE w.queue = queue_name AND w.worker = claim_jobs.worker;
    END IF;
END;
$$;
