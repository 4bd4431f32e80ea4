-- Bosun 0023: what kinds workers serve, and the life of a saga from start to pruning.
--
-- - bosun.served_kinds: every job kind (and saga step kind, `saga:<kind>`) a worker has
--   registered. A job or saga of a kind no worker has ever served is accepted (its worker may
--   not be deployed yet) but can now be reported: bosun.kind_served(kind).
-- - A saga key taken with another kind, inputs or target: the error names what differs.
-- - bosun.delete_saga removes a saga that never started a step (a typo'd kind, say), with its
--   waiting job, so that its key is free again.
-- - Finished sagas can be pruned like jobs (the index below serves the pruner).

CREATE TABLE bosun.served_kinds (
    kind        text PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    last_worker text NOT NULL
);

CREATE FUNCTION bosun.workers_record_kinds() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bosun.served_kinds AS k (kind, last_worker)
    SELECT DISTINCT u.kind, NEW.id FROM unnest(NEW.kinds) AS u(kind) WHERE u.kind IS NOT NULL
    ON CONFLICT (kind) DO UPDATE SET last_seen = now(), last_worker = EXCLUDED.last_worker;
    RETURN NULL;
END;
$$;

CREATE TRIGGER workers_record_kinds AFTER INSERT ON bosun.workers
    FOR EACH ROW EXECUTE FUNCTION bosun.workers_record_kinds();
CREATE TRIGGER workers_record_changed_kinds AFTER UPDATE OF kinds ON bosun.workers
    FOR EACH ROW WHEN (NEW.kinds IS DISTINCT FROM OLD.kinds)
    EXECUTE FUNCTION bosun.workers_record_kinds();

INSERT INTO bosun.served_kinds (kind, last_worker)
SELECT DISTINCT u.kind, w.id FROM bosun.workers AS w, unnest(w.kinds) AS u(kind)
ON CONFLICT DO NOTHING;

-- Whether any worker has ever registered `kind` (a saga's job kind is `saga:<kind>`).
CREATE FUNCTION bosun.kind_served(kind text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'bosun.kind_served: kind must not be null' USING ERRCODE = '22004';
    END IF;
    RETURN EXISTS (SELECT 1 FROM bosun.served_kinds AS k WHERE k.kind = kind_served.kind);
END;
$$;

-- Delete a saga that has not started any step, and its job: returns the deleted row.
CREATE FUNCTION bosun.delete_saga(id uuid) RETURNS bosun.sagas
    LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas := bosun.saga_lock_for('bosun.delete_saga', id);
BEGIN
    IF s.state <> 'running'
       OR EXISTS (SELECT 1 FROM bosun.saga_steps AS st WHERE st.saga_id = s.id AND st.state <> 'pending')
       OR EXISTS (SELECT 1 FROM bosun.jobs AS j
                  WHERE j.unique_key = ANY(bosun.saga_job_keys(s))
                    AND (j.state = 'running' OR j.attempt > 0)) THEN
        RAISE EXCEPTION 'bosun.delete_saga: saga % has started (it is %); only a saga that never ran a step can be deleted: cancel it instead (bosun.cancel_saga)',
            s.id, s.state USING ERRCODE = '55000';
    END IF;
    DELETE FROM bosun.jobs AS j WHERE j.unique_key = ANY(bosun.saga_job_keys(s));
    DELETE FROM bosun.sagas AS x WHERE x.id = s.id;
    RETURN s;
END;
$$;

CREATE INDEX sagas_finished_idx ON bosun.sagas (finished_at)
    WHERE state IN ('succeeded', 'compensated');

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
            bosun.quote_short(kind) USING ERRCODE = '22023';
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
        RAISE EXCEPTION 'bosun.start_saga: key % already names saga % (%), with %; start it with the same kind, inputs and target, or use another key',
            bosun.quote_short(key), existing.id, existing.state,
            concat_ws(', ',
                CASE WHEN existing.kind <> start_saga.kind
                     THEN format('other kind: %s (given %s)', bosun.quote_short(existing.kind),
                                 bosun.quote_short(start_saga.kind)) END,
                CASE WHEN existing.inputs <> start_saga.inputs
                     THEN format('other inputs: %s (given %s)', bosun.quote_short(existing.inputs::text),
                                 bosun.quote_short(start_saga.inputs::text)) END,
                CASE WHEN existing.target IS DISTINCT FROM start_saga.target
                     THEN format('other target: %s (given %s)', bosun.quote_short(existing.target),
                                 bosun.quote_short(start_saga.target)) END)
            USING ERRCODE = '23505';
    END IF;
    RETURN existing.id;
END;
$function$;

