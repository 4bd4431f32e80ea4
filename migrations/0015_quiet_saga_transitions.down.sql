-- Bosun 0015 down: every insert notifies.
CREATE OR REPLACE FUNCTION bosun.jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bosun.notify_queues(ARRAY(
        SELECT DISTINCT queue FROM inserted WHERE scheduled_at <= now()
    ));
    RETURN NULL;
END;
$$;
