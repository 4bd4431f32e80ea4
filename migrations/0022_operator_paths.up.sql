-- Bosun 0022: every operator action leaves jobs and sagas consistent.
--
-- - A saga's jobs belong to the saga. bosun.cancel_job and bosun.retry_job on one refuse and
--   name the saga command that does it (cancel_saga, retry_saga); bosun.retry_jobs leaves
--   them out. Cancelling a step's job used to leave its saga running with no job; retrying
--   it afterwards left a step `running` in a finished saga's ledger.
-- - A saga that has not finished can always be resumed: bosun.retry_saga runs a stuck
--   saga's undo again, and resumes a running or compensating saga whose step has no live
--   job, enqueueing the step's job afresh when it is gone (failed jobs are pruned).
-- - Every error a saga records is kept in its history (sagas.errors); retry_saga no longer
--   wipes the error that made it compensate.
-- - Work on an expunged target never runs again: retry_job and reschedule_job refuse it,
--   retry_jobs leaves it out. A job that has used every attempt a job may have cannot be
--   retried.
-- - A step's job carries the step's own limit of attempts, so listings show `2/3`, not
--   `2/20`.

ALTER TABLE bosun.sagas ADD COLUMN errors jsonb NOT NULL DEFAULT '[]'
    CONSTRAINT saga_errors_must_be_a_json_array CHECK (jsonb_typeof(errors) = 'array');

-- Whatever sets a saga's error also adds it to the history, with the step and state it was in.
CREATE FUNCTION bosun.saga_keep_error() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.errors := NEW.errors || jsonb_build_array(jsonb_build_object(
        'at', now(), 'step', NEW.current_step, 'state', NEW.state, 'error', NEW.error));
    RETURN NEW;
END;
$$;

CREATE TRIGGER sagas_keep_error BEFORE UPDATE OF error ON bosun.sagas
    FOR EACH ROW WHEN (NEW.error IS NOT NULL AND NEW.error IS DISTINCT FROM OLD.error)
    EXECUTE FUNCTION bosun.saga_keep_error();

-- The saga a job is a step of, if it is one: its id, step and direction.
CREATE FUNCTION bosun.job_saga(j bosun.jobs) RETURNS TABLE(saga_id uuid, step integer, direction text)
    LANGUAGE sql STABLE AS $$
    SELECT (j.args->>'saga_id')::uuid, (j.args->>'step')::integer, j.args->>'direction'
    WHERE j.kind LIKE 'saga:%' AND j.args ? 'saga_id'
      AND j.args->>'saga_id' ~ '^[0-9a-fA-F-]{36}$'
$$;

-- Refuse an operator's job command on a saga's step job, naming the saga command instead.
CREATE FUNCTION bosun.job_refuse_saga_step(caller text, j bosun.jobs, instead text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    PERFORM bosun.require_arguments('bosun.job_refuse_saga_step', ARRAY['caller', 'j', 'instead'],
                                    ARRAY[caller IS NULL, (j).id IS NULL, instead IS NULL]);
    SELECT * INTO s FROM bosun.job_saga(j);
    IF FOUND THEN
        RAISE EXCEPTION '%: job % is the % of step % of saga %; use bosun.%_saga(''%'') (bosun saga % --%) instead',
            caller, j.id, CASE WHEN s.direction = 'undo' THEN 'undo' ELSE 'run' END, s.step,
            s.saga_id, instead, s.saga_id, s.saga_id, instead
            USING ERRCODE = '55000';
    END IF;
END;
$$;

-- Refuse to make a job of an expunged target run again.
CREATE FUNCTION bosun.job_refuse_expunged(caller text, j bosun.jobs) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    gone text := bosun.target_gone_reason(j.target);
BEGIN
    PERFORM bosun.require_arguments('bosun.job_refuse_expunged', ARRAY['caller', 'j'],
                                    ARRAY[caller IS NULL, (j).id IS NULL]);
    IF gone IS NOT NULL THEN
        RAISE EXCEPTION '%: job % cannot run again: %', caller, j.id, gone
            USING ERRCODE = '55000';
    END IF;
END;
$$;

-- Make a finished or waiting job run again now: available, with at least one attempt left
-- (within the most a job may have). Whoever calls it has checked that it may.
CREATE FUNCTION bosun.job_revive(job_id bigint) RETURNS bosun.jobs
    LANGUAGE plpgsql AS $$
DECLARE
    j bosun.jobs;
BEGIN
    PERFORM bosun.require_arguments('bosun.job_revive', ARRAY['job_id'], ARRAY[job_id IS NULL]);
    UPDATE bosun.jobs
    SET state = 'available', scheduled_at = now(), finalized_at = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)
    WHERE jobs.id = job_id
    RETURNING * INTO j;
    PERFORM bosun.notify_queues(ARRAY[j.queue]);
    RETURN j;
END;
$$;

CREATE OR REPLACE FUNCTION bosun.retry_job(id bigint) RETURNS bosun.jobs
    LANGUAGE plpgsql AS $$
DECLARE
    j bosun.jobs := bosun.job_lock_for('bosun.retry_job', id);
BEGIN
    IF j.state = 'running' THEN
        RAISE EXCEPTION 'bosun.retry_job: job % is running (attempt %); cancel it first or let it finish',
            j.id, j.attempt USING ERRCODE = '55000';
    END IF;
    PERFORM bosun.job_refuse_saga_step('bosun.retry_job', j, 'retry');
    PERFORM bosun.job_refuse_expunged('bosun.retry_job', j);
    IF j.state = 'available' THEN
        RAISE NOTICE 'bosun.retry_job: job % is already available; nothing changed', j.id;
        RETURN j;
    END IF;
    IF j.attempt >= 1000000000 THEN
        RAISE EXCEPTION 'bosun.retry_job: job % has used all 1000000000 attempts a job may have',
            j.id USING ERRCODE = '55000';
    END IF;
    RETURN bosun.job_revive(j.id);
END;
$$;

CREATE OR REPLACE FUNCTION bosun.retry_jobs(queue text DEFAULT NULL::text, kind text DEFAULT NULL::text, state bosun.job_state DEFAULT 'failed'::bosun.job_state)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_variable
DECLARE
    skipped bigint;
BEGIN
    IF state IS NULL THEN
        RAISE EXCEPTION 'bosun.retry_jobs: state must not be null' USING ERRCODE = '22004';
    END IF;
    IF state IN ('running', 'available') THEN
        RAISE EXCEPTION 'bosun.retry_jobs: state must be scheduled, retryable, failed, cancelled or completed, got %',
            state USING ERRCODE = '22023';
    END IF;
    IF queue IS NOT NULL AND NOT bosun.valid_queue(queue) THEN
        RAISE EXCEPTION 'bosun.retry_jobs: queue % is not a valid queue name', bosun.quote_short(queue)
            USING ERRCODE = '22023';
    END IF;
    IF kind IS NOT NULL AND NOT bosun.valid_kind(kind) THEN
        RAISE EXCEPTION 'bosun.retry_jobs: kind % is not a valid kind', bosun.quote_short(kind)
            USING ERRCODE = '22023';
    END IF;
    -- Left out: a saga's step jobs (the saga decides what runs), work on expunged targets,
    -- and jobs with no attempt left to give.
    SELECT count(*) INTO skipped FROM bosun.jobs AS j
    WHERE j.state = retry_jobs.state
      AND (retry_jobs.queue IS NULL OR j.queue = retry_jobs.queue)
      AND (retry_jobs.kind IS NULL OR j.kind = retry_jobs.kind)
      AND ((SELECT s.saga_id FROM bosun.job_saga(j) AS s) IS NOT NULL
           OR bosun.target_gone_reason(j.target) IS NOT NULL
           OR j.attempt >= 1000000000);
    IF skipped > 0 THEN
        RAISE NOTICE 'bosun.retry_jobs: left out % jobs: saga steps (use bosun.retry_saga), work on expunged targets, or jobs without an attempt left',
            skipped;
    END IF;
    RETURN QUERY
    WITH moved AS (
        UPDATE bosun.jobs AS j
        SET state = 'available', scheduled_at = now(), finalized_at = NULL,
            max_attempts = greatest(j.max_attempts, j.attempt + 1)
        WHERE j.state = retry_jobs.state
          AND (retry_jobs.queue IS NULL OR j.queue = retry_jobs.queue)
          AND (retry_jobs.kind IS NULL OR j.kind = retry_jobs.kind)
          AND (SELECT s.saga_id FROM bosun.job_saga(j) AS s) IS NULL
          AND bosun.target_gone_reason(j.target) IS NULL
          AND j.attempt < 1000000000
        RETURNING j.*
    ), woken AS (
        SELECT bosun.notify_queues(ARRAY(SELECT DISTINCT m.queue FROM moved AS m))
    )
    SELECT moved.* FROM moved, woken;
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
    IF NOT (at > '-infinity' AND at < '10000-01-01 00:00:00+00') THEN
        RAISE EXCEPTION 'bosun.reschedule_job: at must be a finite time before the year 10000, got %', at
            USING ERRCODE = '22023';
    END IF;
    j := bosun.job_lock_for('bosun.reschedule_job', id);
    IF j.state NOT IN ('scheduled', 'available', 'retryable') THEN
        RAISE EXCEPTION 'bosun.reschedule_job: job % is %; only scheduled, available or retryable jobs can be rescheduled (use bosun.retry_job for finished ones)',
            j.id, j.state USING ERRCODE = '55000';
    END IF;
    PERFORM bosun.job_refuse_expunged('bosun.reschedule_job', j);
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
    PERFORM bosun.job_refuse_saga_step('bosun.cancel_job', j, 'cancel');
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

-- The unique keys every job of saga `s` may have: the run and the undo of each step it has
-- (its ledger's steps, or the first one before the ledger exists). Looked up by the unique
-- key's index, not by a scan for a prefix.
CREATE FUNCTION bosun.saga_job_keys(s bosun.sagas) RETURNS text[]
    LANGUAGE sql STABLE AS $$
    SELECT array_agg(format('saga:%s:%s:%s', s.id, i, d.direction))
    FROM generate_series(0, greatest(s.current_step,
                                     (SELECT max(st.idx) FROM bosun.saga_steps AS st
                                      WHERE st.saga_id = s.id), 0)) AS i,
         (VALUES ('do'), ('undo')) AS d(direction)
$$;

-- Resume a saga that has not finished and is not moving: a stuck saga runs its failed undo
-- again; a running or compensating saga whose step has no live job (it was cancelled,
-- failed, or pruned) runs that step's job again. Jobs that are gone are enqueued afresh
-- under their deterministic keys.
CREATE OR REPLACE FUNCTION bosun.retry_saga(id uuid) RETURNS bosun.sagas
    LANGUAGE plpgsql AS $$
DECLARE
    s         bosun.sagas := bosun.saga_lock_for('bosun.retry_saga', id);
    step      integer;
    direction text;
    j         bosun.jobs;
BEGIN
    IF s.state IN ('succeeded', 'compensated') THEN
        RAISE EXCEPTION 'bosun.retry_saga: saga % already %', s.id, s.state
            USING ERRCODE = '55000';
    END IF;
    IF EXISTS (SELECT 1 FROM bosun.jobs AS x
               WHERE x.unique_key = ANY(bosun.saga_job_keys(s))
                 AND x.state IN ('scheduled', 'available', 'running', 'retryable')) THEN
        RAISE EXCEPTION 'bosun.retry_saga: saga % is % and its step has a job that will run; nothing to resume',
            s.id, s.state USING ERRCODE = '55000';
    END IF;
    IF s.state = 'stuck' THEN
        SELECT st.idx INTO step FROM bosun.saga_steps AS st
        WHERE st.saga_id = s.id AND st.state = 'undo_failed'
        ORDER BY st.idx DESC LIMIT 1;
        IF step IS NULL THEN
            RAISE EXCEPTION 'bosun.retry_saga: saga % is stuck but no step is undo_failed', s.id
                USING ERRCODE = '55000';
        END IF;
        direction := 'undo';
        UPDATE bosun.saga_steps SET state = 'undoing'
        WHERE saga_id = s.id AND idx = step;
        UPDATE bosun.sagas SET state = 'compensating', current_step = step, updated_at = now()
        WHERE sagas.id = s.id
        RETURNING * INTO s;
    ELSE
        step := s.current_step;
        direction := CASE WHEN s.state = 'running' THEN 'do' ELSE 'undo' END;
        UPDATE bosun.sagas SET updated_at = now() WHERE sagas.id = s.id RETURNING * INTO s;
    END IF;
    SELECT * INTO j FROM bosun.jobs AS x
    WHERE x.unique_key = format('saga:%s:%s:%s', s.id, step, direction)
    FOR UPDATE;
    IF FOUND THEN
        PERFORM bosun.job_revive(j.id);
    ELSE
        PERFORM bosun.saga_enqueue_step(s.id, s.kind, s.queue, step, direction);
    END IF;
    RETURN s;
END;
$$;

-- As before, and the step's job takes the step's limit of attempts (step_max_attempts).
DROP FUNCTION bosun.saga_step_begin(bigint, integer, uuid, integer, text[], boolean[]);
CREATE FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[], step_max_attempts integer DEFAULT NULL)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    PERFORM bosun.require_arguments('bosun.saga_step_begin',
        ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'step_names', 'step_has_undo'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, saga_id IS NULL, step IS NULL,
              step_names IS NULL, step_has_undo IS NULL]);
    IF NOT bosun.saga_job_held(job_id, job_attempt) THEN
        RETURN NULL;
    END IF;
    PERFORM bosun.saga_job_take_limit(job_id, step_max_attempts);
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

DROP FUNCTION bosun.saga_undo_begin(bigint, integer, uuid, integer);
CREATE FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_max_attempts integer DEFAULT NULL)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    PERFORM bosun.require_arguments('bosun.saga_undo_begin',
        ARRAY['job_id', 'job_attempt', 'saga_id', 'step'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, saga_id IS NULL, step IS NULL]);
    IF NOT bosun.saga_job_held(job_id, job_attempt) THEN
        RETURN NULL;
    END IF;
    PERFORM bosun.saga_job_take_limit(job_id, step_max_attempts);
    UPDATE bosun.saga_steps
    SET state = 'undoing', undo_attempts = undo_attempts + 1,
        undo_started_at = coalesce(undo_started_at, now())
    WHERE saga_steps.saga_id = saga_undo_begin.saga_id AND idx = step;
    SELECT * INTO s FROM bosun.sagas WHERE id = saga_undo_begin.saga_id;
    RETURN s;
END;
$function$;

-- A held step job's limit of attempts becomes the step's, if that is lower; never below the
-- attempt it is on, and a revived job keeps the attempt it was given.
CREATE FUNCTION bosun.saga_job_take_limit(job_id bigint, step_max_attempts integer) RETURNS void
    LANGUAGE sql AS $$
    SELECT bosun.require_arguments('bosun.saga_job_take_limit', ARRAY['job_id'], ARRAY[job_id IS NULL]);
    UPDATE bosun.jobs AS j
    SET max_attempts = greatest(j.attempt, step_max_attempts)
    WHERE j.id = job_id AND step_max_attempts IS NOT NULL
      AND j.max_attempts > greatest(j.attempt, step_max_attempts)
$$;
