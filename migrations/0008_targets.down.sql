-- Bosun 0008 down: removes targets and the reaper; sagas and their step jobs lose their
-- target, and bosun.start_saga and bosun.saga_enqueue_step are as in 0006.
DROP FUNCTION IF EXISTS bosun.reap_expunged(integer);
DROP FUNCTION IF EXISTS bosun.saga_reap_step(bosun.jobs, text);
DROP FUNCTION IF EXISTS bosun.saga_undo_gone(bigint, integer, uuid, integer, text);
DROP FUNCTION IF EXISTS bosun.start_saga(text, text, jsonb, text);
DROP FUNCTION IF EXISTS bosun.saga_enqueue_step(uuid, text, text, integer, text);
DROP FUNCTION IF EXISTS bosun.saga_target_gone(bosun.sagas, integer, text, text);
DROP VIEW IF EXISTS bosun.target_stats;
ALTER TABLE bosun.sagas DROP COLUMN IF EXISTS target;
DROP FUNCTION IF EXISTS bosun.expunge_target(text, text);
DROP FUNCTION IF EXISTS bosun.register_target(text, text);
DROP TRIGGER IF EXISTS jobs_target_attach ON bosun.jobs;
DROP FUNCTION IF EXISTS bosun.job_target_attach();
DROP FUNCTION IF EXISTS bosun.target_attach(text, text);
DROP FUNCTION IF EXISTS bosun.target_gone_reason(text);
DROP INDEX IF EXISTS bosun.jobs_target_live_idx;
DROP TABLE IF EXISTS bosun.targets;
DROP TYPE IF EXISTS bosun.target_state;

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

