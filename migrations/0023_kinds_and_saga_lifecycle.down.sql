-- Bosun 0023 down.
DROP INDEX bosun.sagas_finished_idx;
DROP FUNCTION bosun.delete_saga(uuid);
DROP FUNCTION bosun.kind_served(text);
DROP TRIGGER workers_record_changed_kinds ON bosun.workers;
DROP TRIGGER workers_record_kinds ON bosun.workers;
DROP FUNCTION bosun.workers_record_kinds();
DROP TABLE bosun.served_kinds;

CREATE OR REPLACE FUNCTION bosun.start_saga(kind text, key text, inputs jsonb DEFAULT '{}'::jsonb, target text DEFAULT NULL::text)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
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
    IF target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.start_saga: target must be 1 to 255 characters, got %',
            length(target) USING ERRCODE = '22023';
    END IF;

    SELECT * INTO existing FROM bosun.sagas AS s WHERE s.key = start_saga.key;
    IF NOT FOUND THEN
        IF target IS NOT NULL THEN
            PERFORM bosun.target_attach('bosun.start_saga', target);
        END IF;
        INSERT INTO bosun.sagas AS s (kind, key, inputs, target)
        VALUES (start_saga.kind, start_saga.key, start_saga.inputs, start_saga.target)
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
    END IF;
    IF existing.kind <> start_saga.kind OR existing.inputs <> start_saga.inputs
       OR existing.target IS DISTINCT FROM start_saga.target THEN
        RAISE EXCEPTION 'bosun.start_saga: key % already names saga % (kind %) with other inputs or target; start it with the same kind, inputs and target, or use another key',
            quote_literal(key), existing.id, existing.kind
            USING ERRCODE = '23505',
                  DETAIL = format('existing inputs: %s, target: %s; given: %s, target: %s',
                                  existing.inputs, coalesce(existing.target, 'none'),
                                  inputs, coalesce(target, 'none'));
    END IF;
    RETURN existing.id;
END;
$function$;

