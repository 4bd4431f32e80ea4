-- Bosun 0015: inserts may skip the wake-up notification, for the rest of their transaction.
--
-- A transaction that sent a NOTIFY takes, at commit, a lock shared by the whole database and
-- holds it while its commit is written to disk: such commits run one at a time. Every insert
-- into bosun.jobs notified, and so did every saga transition that enqueues the saga's next
-- job; with four workers running sagas, three in five of the busy server processes were
-- waiting for that lock. A transaction that sets bosun.notify_inserts to 'off' (SET LOCAL,
-- or set_config(..., true)) now inserts jobs without notifying: the worker that runs saga
-- transitions does so and wakes its own claims instead, since the next step is on the queue
-- it serves. Everyone else notifies as before.
CREATE OR REPLACE FUNCTION bosun.jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
