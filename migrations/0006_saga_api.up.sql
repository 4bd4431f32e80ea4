-- Bosun 0006: the SQL API of sagas. Same conventions as 0002: errors start with the function's
-- name and name the bad argument; 22004 null, 22023 bad value, P0002 no such saga, 55000 wrong
-- state, 23505 a key reused for a different saga.

-- Enqueue the job that runs one direction of one step. Its unique key makes this idempotent:
-- enqueueing the same step and direction again returns the job that exists.
CREATE FUNCTION bosun.saga_enqueue_step(
    saga_id uuid, saga_kind text, queue text, step integer, direction text
) RETURNS bigint LANGUAGE sql AS $$
    SELECT bosun.enqueue(
        'saga:' || saga_kind,
        jsonb_build_object('saga_id', saga_id, 'step', step, 'direction', direction),
        queue => queue,
        unique_key => format('saga:%s:%s:%s', saga_id, step, direction))
$$;

-- bosun.start_saga: start saga `kind` under the idempotency key `key`. The same kind, key and
-- inputs again return the existing saga; the same key with another kind or other inputs is
-- an error (a key names one saga).
CREATE FUNCTION bosun.start_saga(kind text, key text, inputs jsonb DEFAULT '{}') RETURNS uuid
    LANGUAGE plpgsql AS $$
DECLARE
    missing  text;
    existing bosun.sagas;
    new_id   uuid;
BEGIN
    missing := CASE WHEN kind IS NULL THEN 'kind' WHEN key IS NULL THEN 'key'
                    WHEN inputs IS NULL THEN 'inputs' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.start_saga: % must not be null', missing USING ERRCODE = '22004';
    END IF;
    IF NOT bosun.valid_saga_kind(kind) THEN
        RAISE EXCEPTION 'bosun.start_saga: kind % is invalid: use 1 to 122 letters, digits, ''_'', ''.'', '':'' or ''-'', starting with a letter, digit or ''_''',
            quote_literal(kind) USING ERRCODE = '22023';
    END IF;
    IF length(key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'bosun.start_saga: key must be 1 to 200 characters, got %', length(key)
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(inputs) <> 'object' THEN
        RAISE EXCEPTION 'bosun.start_saga: inputs must be a JSON object, got %', jsonb_typeof(inputs)
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO bosun.sagas AS s (kind, key, inputs)
    VALUES (start_saga.kind, start_saga.key, start_saga.inputs)
    ON CONFLICT ON CONSTRAINT saga_key_is_unique DO NOTHING
    RETURNING s.id INTO new_id;
    IF new_id IS NOT NULL THEN
        PERFORM bosun.saga_enqueue_step(new_id, start_saga.kind, 'default', 0, 'do');
        RETURN new_id;
    END IF;

    SELECT * INTO existing FROM bosun.sagas AS s WHERE s.key = start_saga.key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bosun.start_saga: the saga with key % was removed while starting; retry',
            quote_literal(key) USING ERRCODE = '40001';
    END IF;
    IF existing.kind <> start_saga.kind OR existing.inputs <> start_saga.inputs THEN
        RAISE EXCEPTION 'bosun.start_saga: key % already names saga % (kind %) with other inputs; start it with the same kind and inputs, or use another key',
            quote_literal(key), existing.id, existing.kind
            USING ERRCODE = '23505',
                  DETAIL = format('existing inputs: %s; given: %s', existing.inputs, inputs);
    END IF;
    RETURN existing.id;
END;
$$;

-- Locks and returns one saga, or raises P0002 naming the function.
CREATE FUNCTION bosun.saga_lock_for(caller text, saga_id uuid) RETURNS bosun.sagas
    LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_id IS NULL THEN
        RAISE EXCEPTION '%: id must not be null', caller USING ERRCODE = '22004';
    END IF;
    SELECT * INTO s FROM bosun.sagas WHERE sagas.id = saga_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no saga with id %', caller, saga_id USING ERRCODE = 'P0002';
    END IF;
    RETURN s;
END;
$$;

-- bosun.cancel_saga: stop a running saga at its next step boundary and compensate. A running
-- step's handler is told on channel `bosun_control`. Cancelling a saga that is already
-- compensating or stuck only records the request; a finished saga is refused.
CREATE FUNCTION bosun.cancel_saga(id uuid) RETURNS bosun.sagas LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas := bosun.saga_lock_for('bosun.cancel_saga', id);
BEGIN
    IF s.state IN ('succeeded', 'compensated') THEN
        RAISE EXCEPTION 'bosun.cancel_saga: saga % already %', s.id, s.state
            USING ERRCODE = '55000';
    END IF;
    UPDATE bosun.sagas SET cancel_requested = true, updated_at = now()
    WHERE sagas.id = s.id
    RETURNING * INTO s;
    PERFORM pg_notify('bosun_control',
        json_build_object('action', 'cancel_saga', 'saga_id', s.id)::text);
    RETURN s;
END;
$$;

-- bosun.retry_saga: resume the compensation of a stuck saga: the undo that gave up runs again.
CREATE FUNCTION bosun.retry_saga(id uuid) RETURNS bosun.sagas LANGUAGE plpgsql AS $$
DECLARE
    s    bosun.sagas := bosun.saga_lock_for('bosun.retry_saga', id);
    step integer;
BEGIN
    IF s.state <> 'stuck' THEN
        RAISE EXCEPTION 'bosun.retry_saga: saga % is %; only stuck sagas can be retried', s.id, s.state
            USING ERRCODE = '55000';
    END IF;
    SELECT st.idx INTO step FROM bosun.saga_steps AS st
    WHERE st.saga_id = s.id AND st.state = 'undo_failed'
    ORDER BY st.idx DESC LIMIT 1;
    IF step IS NULL THEN
        RAISE EXCEPTION 'bosun.retry_saga: saga % is stuck but no step is undo_failed', s.id
            USING ERRCODE = '55000';
    END IF;
    UPDATE bosun.saga_steps SET state = 'undoing', error = NULL
    WHERE saga_id = s.id AND idx = step;
    UPDATE bosun.sagas SET state = 'compensating', error = NULL, updated_at = now()
    WHERE sagas.id = s.id
    RETURNING * INTO s;
    -- The undo job exists (failed); run it again.
    PERFORM bosun.retry_job(j.id) FROM bosun.jobs AS j
    WHERE j.unique_key = format('saga:%s:%s:undo', s.id, step)
      AND j.state IN ('failed', 'cancelled');
    RETURN s;
END;
$$;
