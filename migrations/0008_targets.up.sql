-- Bosun 0008: targets and the reaper. A target is the external thing work acts on (a host, a
-- storage pantry, a droplet). Jobs and sagas name theirs; an unknown name is registered as in
-- service on first use. Expunging a target is final: new work onto it is refused, and the
-- reaper (bosun.reap_expunged, run by the maintenance leader) fails the work still on it and
-- unwinds the sagas that depended on it. An undo on an expunged target counts as done: what
-- it would have deleted died with the target.

CREATE TYPE bosun.target_state AS ENUM ('in_service', 'expunged');

CREATE TABLE bosun.targets (
    name          text               NOT NULL PRIMARY KEY,
    kind          text,
    state         bosun.target_state NOT NULL DEFAULT 'in_service',
    registered_at timestamptz        NOT NULL DEFAULT now(),
    expunged_at   timestamptz,
    reason        text,
    -- Jobs the reaper failed because this target was expunged (kept when jobs are pruned).
    reaped_jobs   bigint             NOT NULL DEFAULT 0,
    CONSTRAINT target_name_must_be_1_to_255_characters CHECK (length(name) BETWEEN 1 AND 255),
    CONSTRAINT target_kind_must_be_1_to_100_characters
        CHECK (kind IS NULL OR length(kind) BETWEEN 1 AND 100),
    CONSTRAINT expunged_target_has_expunged_at
        CHECK ((state = 'expunged') = (expunged_at IS NOT NULL))
);

INSERT INTO bosun.targets (name)
SELECT DISTINCT target FROM bosun.jobs WHERE target IS NOT NULL
ON CONFLICT DO NOTHING;

-- Live work per target: `bosun targets` counts it and the reaper walks it.
CREATE INDEX jobs_target_live_idx ON bosun.jobs (target, id)
    WHERE target IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');

-- Why work on `target` can no longer run, or NULL while it is in service (or none is named).
CREATE FUNCTION bosun.target_gone_reason(target text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('target %s expunged: %s', t.name, coalesce(t.reason, 'no reason given'))
    FROM bosun.targets AS t
    WHERE t.name = target_gone_reason.target AND t.state = 'expunged'
$$;

-- Register `target` as in service unless known, and refuse it if expunged. The row is locked
-- FOR SHARE until the caller commits, so an expunge waits for work being attached right now
-- and the reaper then sees that work.
CREATE FUNCTION bosun.target_attach(caller text, target text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    t bosun.targets;
BEGIN
    SELECT * INTO t FROM bosun.targets AS x WHERE x.name = target FOR SHARE;
    IF NOT FOUND THEN
        INSERT INTO bosun.targets (name) VALUES (target) ON CONFLICT DO NOTHING;
        SELECT * INTO t FROM bosun.targets AS x WHERE x.name = target FOR SHARE;
    END IF;
    IF t.state = 'expunged' THEN
        RAISE EXCEPTION '%: target % is expunged (%); no new work can be attached to it',
            caller, quote_literal(target), coalesce(t.reason, 'no reason given')
            USING ERRCODE = '55000';
    END IF;
END;
$$;

CREATE FUNCTION bosun.job_target_attach() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bosun.target_attach('bosun.enqueue', NEW.target);
    RETURN NEW;
END;
$$;

-- Every way of enqueueing (functions, plain INSERT, COPY) passes through this trigger.
CREATE TRIGGER jobs_target_attach BEFORE INSERT ON bosun.jobs
    FOR EACH ROW WHEN (NEW.target IS NOT NULL) EXECUTE FUNCTION bosun.job_target_attach();

-- bosun.register_target: make a target known (optionally with its kind) before any work names
-- it. Idempotent; a kind given later fills in or replaces the kind. An expunged target is
-- refused: expunging is final.
CREATE FUNCTION bosun.register_target(name text, kind text DEFAULT NULL) RETURNS bosun.targets
    LANGUAGE plpgsql AS $$
DECLARE
    t bosun.targets;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.register_target: name must not be null' USING ERRCODE = '22004';
    END IF;
    IF length(name) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.register_target: name must be 1 to 255 characters, got %',
            length(name) USING ERRCODE = '22023';
    END IF;
    IF kind IS NOT NULL AND length(kind) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'bosun.register_target: kind must be 1 to 100 characters, got %',
            length(kind) USING ERRCODE = '22023';
    END IF;
    PERFORM bosun.target_attach('bosun.register_target', name);
    UPDATE bosun.targets AS x SET kind = coalesce(register_target.kind, x.kind)
    WHERE x.name = register_target.name
    RETURNING * INTO t;
    RETURN t;
END;
$$;

-- bosun.expunge_target: the target is gone for good. Final and idempotent: expunging it again
-- returns it unchanged (first reason and time kept). The maintenance leader is woken on
-- channel `bosun_control` to reap the work on it at once.
CREATE FUNCTION bosun.expunge_target(name text, reason text DEFAULT NULL) RETURNS bosun.targets
    LANGUAGE plpgsql AS $$
DECLARE
    t bosun.targets;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.expunge_target: name must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO t FROM bosun.targets AS x WHERE x.name = expunge_target.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bosun.expunge_target: no target named %; bosun targets lists them',
            quote_literal(name) USING ERRCODE = 'P0002';
    END IF;
    IF t.state = 'expunged' THEN
        RETURN t;
    END IF;
    UPDATE bosun.targets AS x
    SET state = 'expunged', expunged_at = now(), reason = expunge_target.reason
    WHERE x.name = t.name
    RETURNING * INTO t;
    PERFORM pg_notify('bosun_control',
        json_build_object('action', 'target_expunged', 'target', t.name)::text);
    RETURN t;
END;
$$;

-- Sagas name a target too; their step jobs carry it.
ALTER TABLE bosun.sagas ADD COLUMN target text;
ALTER TABLE bosun.sagas ADD CONSTRAINT saga_target_must_be_1_to_255_characters
    CHECK (target IS NULL OR length(target) BETWEEN 1 AND 255);

-- Targets with their live work (jobs not finished) and reaped work, for `bosun targets`.
CREATE VIEW bosun.target_stats AS
SELECT t.name, t.kind, t.state, t.registered_at, t.expunged_at, t.reason,
       (SELECT count(*) FROM bosun.jobs AS j
        WHERE j.target = t.name
          AND j.state IN ('scheduled', 'available', 'running', 'retryable')) AS live_jobs,
       t.reaped_jobs,
       (SELECT count(*) FROM bosun.sagas AS s
        WHERE s.target = t.name AND s.state IN ('running', 'compensating', 'stuck')) AS live_sagas
FROM bosun.targets AS t;

-- Enqueue the job that runs one direction of one step, on the saga's target. When that
-- target is expunged the step cannot run: a step to do fails (the saga compensates), and an
-- undo counts as done (what it would delete died with the target), so compensation goes on.
-- Returns the job's id, or NULL when no job was needed.
DROP FUNCTION bosun.saga_enqueue_step(uuid, text, text, integer, text);
CREATE FUNCTION bosun.saga_enqueue_step(
    saga_id uuid, saga_kind text, queue text, step integer, direction text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s    bosun.sagas;
    gone text;
BEGIN
    SELECT * INTO s FROM bosun.sagas AS x WHERE x.id = saga_enqueue_step.saga_id;
    gone := bosun.target_gone_reason(s.target);
    IF gone IS NULL THEN
        RETURN bosun.enqueue(
            'saga:' || saga_kind,
            jsonb_build_object('saga_id', saga_id, 'step', step, 'direction', direction),
            queue => queue,
            unique_key => format('saga:%s:%s:%s', saga_id, step, direction),
            target => s.target);
    END IF;
    PERFORM bosun.saga_target_gone(s, step, direction, gone);
    RETURN NULL;
END;
$$;

-- Step `step` of saga `s` cannot run in `direction` because its target is gone (`reason`):
-- a step to do fails and the saga compensates; an undo is recorded as undone, with the
-- reason, and compensation goes on with the next step down.
CREATE FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF direction = 'do' THEN
        UPDATE bosun.saga_steps
        SET state = 'failed', error = reason, finished_at = now()
        WHERE saga_id = s.id AND idx = step;
        UPDATE bosun.sagas SET error = format('step %s failed: %s', step, reason),
                               updated_at = now()
        WHERE id = s.id;
    ELSE
        UPDATE bosun.saga_steps
        SET state = 'undone', undone_at = now(),
            error = reason || '; counted as undone'
        WHERE saga_id = s.id AND idx = step;
    END IF;
    PERFORM bosun.saga_compensate_below(s, step);
END;
$$;

-- An undo's handler found its target gone by itself (e.g. a 404 from a service that lost its
-- state): finish its job, fenced, and count the step as undone with the reason.
CREATE FUNCTION bosun.saga_undo_gone(
    job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'completed') THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas AS x WHERE x.id = saga_undo_gone.saga_id FOR UPDATE;
    PERFORM bosun.saga_target_gone(s, step, 'undo', 'target gone: ' || reason);
    RETURN true;
END;
$$;

-- bosun.start_saga, now with an optional target: the saga's step jobs carry it, and a saga
-- cannot start on an expunged target. Idempotent on `key` as before; the target is part of
-- what must match.
DROP FUNCTION bosun.start_saga(text, text, jsonb);
CREATE FUNCTION bosun.start_saga(
    kind text, key text, inputs jsonb DEFAULT '{}', target text DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql AS $$
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
$$;

-- The reaper's saga half: the step job `j` was failed because its target is gone. A step
-- that was to run fails and the saga compensates; an undo counts as done. Only while the
-- saga is in the phase the job belongs to (a forward step while running, an undo while
-- compensating): otherwise the saga has moved on and the job was already moot.
CREATE FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    s         bosun.sagas;
    step      integer := (j.args->>'step')::integer;
    direction text := j.args->>'direction';
BEGIN
    SELECT * INTO s FROM bosun.sagas WHERE id = (j.args->>'saga_id')::uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF (direction = 'do' AND s.state = 'running'
        AND EXISTS (SELECT FROM bosun.saga_steps AS st
                    WHERE st.saga_id = s.id AND st.idx = step
                      AND st.state IN ('pending', 'running')))
       OR (direction = 'do' AND s.state = 'running'
           AND NOT EXISTS (SELECT FROM bosun.saga_steps AS st WHERE st.saga_id = s.id))
       OR (direction = 'undo' AND s.state = 'compensating'
           AND EXISTS (SELECT FROM bosun.saga_steps AS st
                       WHERE st.saga_id = s.id AND st.idx = step AND st.state = 'undoing')) THEN
        PERFORM bosun.saga_target_gone(s, step, direction, reason);
    END IF;
END;
$$;

-- bosun.reap_expunged: one batch of the reaper. Jobs on expunged targets that have not
-- finished are failed with an error entry naming the target and the reason; running ones are
-- fenced (their worker's late writes change nothing) and their handlers told on
-- `bosun_control`; saga step jobs also move their saga on (bosun.saga_reap_step). Then stuck
-- sagas on expunged targets resume compensating: their failed undo counts as done. Returns
-- the jobs reaped; a second pass finds nothing.
CREATE FUNCTION bosun.reap_expunged(batch integer DEFAULT 1000)
    RETURNS TABLE (id bigint, kind text, queue text, target text, was_running boolean)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j      bosun.jobs;
    reason text;
    s      bosun.sagas;
    step   integer;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'bosun.reap_expunged: batch must be at least 1, got %', batch
            USING ERRCODE = '22023';
    END IF;
    FOR j IN
        SELECT x.* FROM bosun.jobs AS x
        JOIN bosun.targets AS t ON t.name = x.target AND t.state = 'expunged'
        WHERE x.target IS NOT NULL
          AND x.state IN ('scheduled', 'available', 'running', 'retryable')
        ORDER BY x.id
        LIMIT batch
        FOR UPDATE OF x SKIP LOCKED
    LOOP
        reason := bosun.target_gone_reason(j.target);
        UPDATE bosun.jobs AS x
        SET state = 'failed', finalized_at = now(),
            errors = x.errors || jsonb_build_array(jsonb_build_object(
                'attempt', x.attempt, 'at', now(), 'error', reason,
                'worker', x.attempted_by, 'kind', 'target_expunged', 'target', x.target))
        WHERE x.id = j.id;
        IF j.kind LIKE 'saga:%' AND j.args ? 'saga_id' THEN
            PERFORM bosun.saga_reap_step(j, reason);
        END IF;
        IF j.state = 'running' THEN
            PERFORM pg_notify('bosun_control',
                json_build_object('action', 'cancel', 'id', j.id, 'attempt', j.attempt)::text);
        END IF;
        UPDATE bosun.targets AS t SET reaped_jobs = t.reaped_jobs + 1 WHERE t.name = j.target;
        id := j.id; kind := j.kind; queue := j.queue; target := j.target;
        was_running := j.state = 'running';
        RETURN NEXT;
    END LOOP;

    FOR s IN
        SELECT x.* FROM bosun.sagas AS x
        JOIN bosun.targets AS t ON t.name = x.target AND t.state = 'expunged'
        WHERE x.state = 'stuck'
        LIMIT batch
        FOR UPDATE OF x SKIP LOCKED
    LOOP
        SELECT st.idx INTO step FROM bosun.saga_steps AS st
        WHERE st.saga_id = s.id AND st.state = 'undo_failed'
        ORDER BY st.idx DESC LIMIT 1;
        IF step IS NOT NULL THEN
            UPDATE bosun.sagas AS x SET state = 'compensating', updated_at = now()
            WHERE x.id = s.id;
            PERFORM bosun.saga_target_gone(s, step, 'undo', bosun.target_gone_reason(s.target));
        END IF;
    END LOOP;
END;
$$;
