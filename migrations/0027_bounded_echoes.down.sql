-- Bosun 0027 down: the 0025 definitions, which quote the whole value.

CREATE OR REPLACE FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean)
 RETURNS bosun.queues
 LANGUAGE plpgsql
AS $function$
DECLARE
    q bosun.queues;
BEGIN
    PERFORM bosun.require_arguments('bosun.queue_set_paused', ARRAY['caller', 'pause'], ARRAY[queue_set_paused.caller IS NULL, queue_set_paused.pause IS NULL]);
    IF queue_name IS NULL THEN
        RAISE EXCEPTION '%: name must not be null', caller USING ERRCODE = '22004';
    END IF;
    IF NOT bosun.valid_queue(queue_name) THEN
        RAISE EXCEPTION '%: name % is not a valid queue name: use 1 to 64 letters, digits, ''_'', ''.'' or ''-''',
            caller, quote_literal(queue_name) USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.queues AS existing (name, paused, paused_at, updated_at)
    VALUES (queue_name, pause, CASE WHEN pause THEN now() END, now())
    ON CONFLICT (name) DO UPDATE
    SET paused = pause,
        paused_at = CASE WHEN pause THEN coalesce(existing.paused_at, now()) END,
        updated_at = now()
    RETURNING * INTO q;
    IF NOT pause THEN
        PERFORM bosun.notify_queues(ARRAY[queue_name]);
    END IF;
    RETURN q;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.periodic_lock_for(caller text, name text)
 RETURNS bosun.periodic_jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    p bosun.periodic_jobs;
BEGIN
    PERFORM bosun.require_arguments('bosun.periodic_lock_for', ARRAY['caller'], ARRAY[periodic_lock_for.caller IS NULL]);
    IF name IS NULL THEN
        RAISE EXCEPTION '%: name must not be null', caller USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM bosun.periodic_jobs AS x WHERE x.name = periodic_lock_for.name
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no periodic job named %', caller, quote_literal(name)
            USING ERRCODE = 'P0002';
    END IF;
    RETURN p;
END;
$function$;
