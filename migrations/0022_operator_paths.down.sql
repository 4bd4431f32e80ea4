-- Bosun 0022 down: the operator functions as they were before it.
DROP FUNCTION bosun.saga_undo_begin(bigint, integer, uuid, integer, integer);
DROP FUNCTION bosun.saga_step_begin(bigint, integer, uuid, integer, text[], boolean[], integer);
DROP FUNCTION bosun.saga_job_take_limit(bigint, integer);

CREATE OR REPLACE FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[])
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.retry_saga(id uuid)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.cancel_job(id bigint)
 RETURNS bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    j bosun.jobs := bosun.job_lock_for('bosun.cancel_job', id);
BEGIN
    IF j.state IN ('completed', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'bosun.cancel_job: job % is already %; only scheduled, available, retryable or running jobs can be cancelled',
            j.id, j.state USING ERRCODE = '55000';
    END IF;
    UPDATE bosun.jobs
    SET state = 'cancelled', finalized_at = now(),
        errors = errors || jsonb_build_array(jsonb_build_object(
            'attempt', attempt, 'at', now(), 'error', 'cancelled by bosun.cancel_job',
            'worker', attempted_by, 'kind', 'cancelled'))
    WHERE jobs.id = j.id
    RETURNING * INTO j;
    PERFORM pg_notify('bosun_control',
        json_build_object('action', 'cancel', 'id', j.id, 'attempt', j.attempt)::text);
    RETURN j;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.reschedule_job(id bigint, at timestamp with time zone)
 RETURNS bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    j bosun.jobs;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'bosun.reschedule_job: at must not be null' USING ERRCODE = '22004';
    END IF;
    j := bosun.job_lock_for('bosun.reschedule_job', id);
    IF j.state NOT IN ('scheduled', 'available', 'retryable') THEN
        RAISE EXCEPTION 'bosun.reschedule_job: job % is %; only scheduled, available or retryable jobs can be rescheduled (use bosun.retry_job for finished ones)',
            j.id, j.state USING ERRCODE = '55000';
    END IF;
    UPDATE bosun.jobs
    SET scheduled_at = at,
        state = CASE WHEN at > now() THEN 'scheduled' ELSE 'available' END::bosun.job_state
    WHERE jobs.id = j.id
    RETURNING * INTO j;
    IF j.state = 'available' THEN
        PERFORM bosun.notify_queues(ARRAY[j.queue]);
    END IF;
    RETURN j;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.retry_jobs(queue text DEFAULT NULL::text, kind text DEFAULT NULL::text, state bosun.job_state DEFAULT 'failed'::bosun.job_state)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_variable
BEGIN
    IF state IS NULL THEN
        RAISE EXCEPTION 'bosun.retry_jobs: state must not be null' USING ERRCODE = '22004';
    END IF;
    IF state IN ('running', 'available') THEN
        RAISE EXCEPTION 'bosun.retry_jobs: state must be scheduled, retryable, failed, cancelled or completed, got %',
            state USING ERRCODE = '22023';
    END IF;
    IF queue IS NOT NULL AND NOT bosun.valid_queue(queue) THEN
        RAISE EXCEPTION 'bosun.retry_jobs: queue % is not a valid queue name', quote_literal(queue)
            USING ERRCODE = '22023';
    END IF;
    IF kind IS NOT NULL AND NOT bosun.valid_kind(kind) THEN
        RAISE EXCEPTION 'bosun.retry_jobs: kind % is not a valid kind', quote_literal(kind)
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH moved AS (
        UPDATE bosun.jobs AS j
        SET state = 'available', scheduled_at = now(), finalized_at = NULL,
            max_attempts = greatest(j.max_attempts, j.attempt + 1)
        WHERE j.state = retry_jobs.state
          AND (retry_jobs.queue IS NULL OR j.queue = retry_jobs.queue)
          AND (retry_jobs.kind IS NULL OR j.kind = retry_jobs.kind)
        RETURNING j.*
    ), woken AS (
        SELECT bosun.notify_queues(ARRAY(SELECT DISTINCT m.queue FROM moved AS m))
    )
    SELECT moved.* FROM moved, woken;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.retry_job(id bigint)
 RETURNS bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    j bosun.jobs := bosun.job_lock_for('bosun.retry_job', id);
BEGIN
    IF j.state = 'running' THEN
        RAISE EXCEPTION 'bosun.retry_job: job % is running (attempt %); cancel it first or let it finish',
            j.id, j.attempt USING ERRCODE = '55000';
    END IF;
    IF j.state = 'available' THEN
        RAISE NOTICE 'bosun.retry_job: job % is already available; nothing changed', j.id;
        RETURN j;
    END IF;
    UPDATE bosun.jobs
    SET state = 'available', scheduled_at = now(), finalized_at = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)
    WHERE jobs.id = j.id
    RETURNING * INTO j;
    PERFORM bosun.notify_queues(ARRAY[j.queue]);
    RETURN j;
END;
$function$;

DROP FUNCTION bosun.saga_job_keys(bosun.sagas);
DROP FUNCTION bosun.job_revive(bigint);
DROP FUNCTION bosun.job_refuse_expunged(text, bosun.jobs);
DROP FUNCTION bosun.job_refuse_saga_step(text, bosun.jobs, text);
DROP FUNCTION bosun.job_saga(bosun.jobs);
DROP TRIGGER sagas_keep_error ON bosun.sagas;
DROP FUNCTION bosun.saga_keep_error();
ALTER TABLE bosun.sagas DROP COLUMN errors;
