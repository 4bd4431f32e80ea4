-- Bosun 0007: the transitions the saga runner makes. Each function is one atomic step of the
-- saga's life, fenced by the step job's attempt: it first finishes the job the runner holds
-- (`state = 'running' AND attempt = job_attempt`) and does nothing else if that fails, so a
-- runner that lost its job (rescued while paused, taken over) cannot touch the ledger. The
-- step's outcome, its output and the enqueue of what comes next commit together.
-- They return false when fenced out.

-- Finish the runner's job as `state`, fenced. `error` is appended to the job's errors.
CREATE FUNCTION bosun.saga_job_finish(
    job_id bigint, job_attempt integer, state bosun.job_state, error text DEFAULT NULL
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bosun.jobs AS j
    SET state = saga_job_finish.state,
        finalized_at = now(),
        errors = CASE WHEN error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(), 'error', error,
                          'worker', j.attempted_by, 'kind', 'permanent'))
                 END
    WHERE j.id = job_id AND j.state = 'running' AND j.attempt = job_attempt;
    RETURN FOUND;
END;
$$;

-- Whether the runner still holds its job (running at its attempt); locks the job row for the
-- rest of the transaction so a rescue cannot slip in between.
CREATE FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM bosun.jobs AS j
    WHERE j.id = job_id AND j.state = 'running' AND j.attempt = job_attempt
    FOR UPDATE;
    RETURN FOUND;
END;
$$;

-- Compensate from step `below` down: undo the highest succeeded step under it, or finish the
-- saga as compensated when there is none.
CREATE FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    next_undo integer;
BEGIN
    SELECT max(st.idx) INTO next_undo FROM bosun.saga_steps AS st
    WHERE st.saga_id = s.id AND st.idx < below AND st.state = 'succeeded';
    IF next_undo IS NULL THEN
        UPDATE bosun.sagas SET state = 'compensated', finished_at = now(), updated_at = now()
        WHERE id = s.id;
    ELSE
        UPDATE bosun.sagas SET state = 'compensating', current_step = next_undo, updated_at = now()
        WHERE id = s.id;
        UPDATE bosun.saga_steps SET state = 'undoing'
        WHERE saga_id = s.id AND idx = next_undo;
        PERFORM bosun.saga_enqueue_step(s.id, s.kind, s.queue, next_undo, 'undo');
    END IF;
END;
$$;

-- A step's job is starting: make sure the ledger lists every step (names and whether each has
-- an undo, from the runner's definition), count the attempt, and return the saga. NULL when
-- the saga no longer runs forward (cancelled, compensating), or when the runner no longer
-- holds its job (then it must not touch the ledger): the caller then calls
-- bosun.saga_step_skip, which is fenced in turn.
CREATE FUNCTION bosun.saga_step_begin(
    job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[],
    step_has_undo boolean[]
) RETURNS bosun.sagas LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_held(job_id, job_attempt) THEN
        RETURN NULL;
    END IF;
    INSERT INTO bosun.saga_steps (saga_id, idx, name, has_undo)
    SELECT saga_step_begin.saga_id, t.ord - 1, t.name, t.has_undo
    FROM unnest(step_names, step_has_undo) WITH ORDINALITY AS t(name, has_undo, ord)
    ON CONFLICT DO NOTHING;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_step_begin.saga_id FOR UPDATE;
    IF NOT FOUND OR s.state <> 'running' OR s.cancel_requested THEN
        RETURN NULL;
    END IF;
    UPDATE bosun.saga_steps
    SET state = 'running', attempts = attempts + 1, error = NULL,
        started_at = coalesce(started_at, now())
    WHERE saga_steps.saga_id = s.id AND idx = step;
    UPDATE bosun.sagas SET current_step = step, updated_at = now() WHERE id = s.id;
    RETURN s;
END;
$$;

-- A step succeeded with `output`: record it and enqueue the next step, or finish the saga.
-- If a cancel arrived meanwhile, compensate instead, starting with this step.
CREATE FUNCTION bosun.saga_step_done(
    job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer,
    output jsonb
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'completed') THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_step_done.saga_id FOR UPDATE;
    UPDATE bosun.saga_steps
    SET state = 'succeeded', output = saga_step_done.output, finished_at = now(), error = NULL,
        progress_pct = 100
    WHERE saga_steps.saga_id = s.id AND idx = step;
    IF s.cancel_requested THEN
        UPDATE bosun.sagas SET error = 'cancelled', updated_at = now() WHERE id = s.id;
        PERFORM bosun.saga_compensate_below(s, step + 1);
    ELSIF step + 1 >= step_count THEN
        UPDATE bosun.sagas
        SET state = 'succeeded', current_step = step, finished_at = now(), updated_at = now()
        WHERE id = s.id;
    ELSE
        UPDATE bosun.sagas SET current_step = step + 1, updated_at = now() WHERE id = s.id;
        PERFORM bosun.saga_enqueue_step(s.id, s.kind, s.queue, step + 1, 'do');
    END IF;
    RETURN true;
END;
$$;

-- A step failed for good (permanent error, attempts used up): fail its job, mark it failed,
-- and compensate the steps before it.
CREATE FUNCTION bosun.saga_step_fail(
    job_id bigint, job_attempt integer, saga_id uuid, step integer, error text
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'failed', error) THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_step_fail.saga_id FOR UPDATE;
    UPDATE bosun.saga_steps
    SET state = 'failed', error = saga_step_fail.error, finished_at = now()
    WHERE saga_steps.saga_id = s.id AND idx = step;
    UPDATE bosun.sagas SET error = format('step %s failed: %s', step, saga_step_fail.error),
                           updated_at = now()
    WHERE id = s.id;
    PERFORM bosun.saga_compensate_below(s, step);
    RETURN true;
END;
$$;

-- A step's job found the saga cancelled (or already compensating) before running: complete
-- the job without running the step, and compensate what succeeded before it.
CREATE FUNCTION bosun.saga_step_skip(
    job_id bigint, job_attempt integer, saga_id uuid, step integer
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'completed') THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_step_skip.saga_id FOR UPDATE;
    IF s.state = 'running' THEN
        UPDATE bosun.sagas SET error = 'cancelled', updated_at = now() WHERE id = s.id;
        PERFORM bosun.saga_compensate_below(s, step);
    END IF;
    RETURN true;
END;
$$;

-- An undo is starting: count the attempt. NULL when the runner no longer holds its job.
CREATE FUNCTION bosun.saga_undo_begin(
    job_id bigint, job_attempt integer, saga_id uuid, step integer
) RETURNS bosun.sagas LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_held(job_id, job_attempt) THEN
        RETURN NULL;
    END IF;
    UPDATE bosun.saga_steps
    SET state = 'undoing', undo_attempts = undo_attempts + 1,
        undo_started_at = coalesce(undo_started_at, now())
    WHERE saga_steps.saga_id = saga_undo_begin.saga_id AND idx = step;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_undo_begin.saga_id;
    RETURN s;
END;
$$;

-- An undo succeeded: the step is undone; compensate the next one down.
CREATE FUNCTION bosun.saga_undo_done(
    job_id bigint, job_attempt integer, saga_id uuid, step integer
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas;
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'completed') THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_undo_done.saga_id FOR UPDATE;
    UPDATE bosun.saga_steps SET state = 'undone', undone_at = now(), error = NULL
    WHERE saga_steps.saga_id = s.id AND idx = step;
    PERFORM bosun.saga_compensate_below(s, step);
    RETURN true;
END;
$$;

-- An undo gave up: the saga is stuck until an operator runs bosun.retry_saga.
CREATE FUNCTION bosun.saga_undo_fail(
    job_id bigint, job_attempt integer, saga_id uuid, step integer, error text
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'failed', error) THEN
        RETURN false;
    END IF;
    UPDATE bosun.saga_steps SET state = 'undo_failed', error = saga_undo_fail.error
    WHERE saga_steps.saga_id = saga_undo_fail.saga_id AND idx = step;
    UPDATE bosun.sagas
    SET state = 'stuck', error = format('undo of step %s failed: %s', step, saga_undo_fail.error),
        updated_at = now()
    WHERE id = saga_undo_fail.saga_id;
    RETURN true;
END;
$$;

-- A retryable error of a step or an undo: recorded on the ledger while the job retries. Best
-- effort and unfenced, so it only touches a step that is still running or undoing: a stale
-- runner cannot stamp an error on a step that has moved on.
CREATE FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text)
    RETURNS void LANGUAGE sql AS $$
    UPDATE bosun.saga_steps SET error = saga_step_note_error.error
    WHERE saga_steps.saga_id = saga_step_note_error.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$$;

-- Best-effort progress of a running step (percent and a message); only while it runs.
CREATE FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text)
    RETURNS void LANGUAGE sql AS $$
    UPDATE bosun.saga_steps
    SET progress_pct = least(greatest(pct, 0), 100), progress_message = message
    WHERE saga_steps.saga_id = saga_step_progress.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$$;
