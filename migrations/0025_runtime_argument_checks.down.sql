-- Bosun 0025 down.
CREATE OR REPLACE FUNCTION bosun.saga_job_finish(job_id bigint, job_attempt integer, state bosun.job_state, error text DEFAULT NULL::text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_step_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_step_done(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer, output jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_step_skip(job_id bigint, job_attempt integer, saga_id uuid, step integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text)
 RETURNS void
 LANGUAGE sql
AS $function$
    UPDATE bosun.saga_steps SET error = saga_step_note_error.error
    WHERE saga_steps.saga_id = saga_step_note_error.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text)
 RETURNS void
 LANGUAGE sql
AS $function$
    UPDATE bosun.saga_steps
    SET progress_pct = least(greatest(pct, 0), 100), progress_message = message
    WHERE saga_steps.saga_id = saga_step_progress.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_undo_done(job_id bigint, job_attempt integer, saga_id uuid, step integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_undo_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_undo_gone(job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_enqueue_step(saga_id uuid, saga_kind text, queue text, step integer, direction text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM 1 FROM bosun.jobs AS j
    WHERE j.id = job_id AND j.state = 'running' AND j.attempt = job_attempt
    FOR UPDATE;
    RETURN FOUND;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.notify_queues(queues text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    payload text := array_to_string(queues, ',');
BEGIN
    IF payload IS NULL OR payload = '' THEN
        RETURN;
    END IF;
    IF length(payload) > 7000 THEN
        payload := '*';
    END IF;
    PERFORM pg_notify('bosun_jobs', payload);
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean)
 RETURNS bosun.queues
 LANGUAGE plpgsql
AS $function$
DECLARE
    q bosun.queues;
BEGIN
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

CREATE OR REPLACE FUNCTION bosun.sample_queues(exact_below bigint DEFAULT 100000)
 RETURNS TABLE(queue text, state text, jobs bigint, estimated boolean)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    table_rows float8;
    finished   text;
    q          text;
    plan       json;
BEGIN
    RETURN QUERY
        SELECT j.queue, j.state::text, count(*), false
        FROM bosun.jobs AS j
        WHERE j.state IN ('available', 'scheduled', 'retryable')
        GROUP BY j.queue, j.state
        UNION ALL
        SELECT j.queue, 'running', count(*), false
        FROM bosun.jobs AS j
        WHERE j.state = 'running'
        GROUP BY j.queue;
    SELECT c.reltuples INTO table_rows FROM pg_class AS c
    WHERE c.oid = 'bosun.jobs'::regclass;
    IF table_rows < exact_below THEN
        RETURN QUERY
            SELECT j.queue, j.state::text, count(*), false
            FROM bosun.jobs AS j
            WHERE j.state IN ('completed', 'failed', 'cancelled')
            GROUP BY j.queue, j.state;
        RETURN;
    END IF;
    -- Queues known without a scan: paused or resumed ones, those with live jobs, and the
    -- planner's most common values of the column.
    FOR q IN SELECT x.name FROM bosun.queues AS x
             UNION SELECT DISTINCT j.queue FROM bosun.jobs AS j
                   WHERE j.state IN ('available', 'scheduled', 'retryable')
             UNION SELECT DISTINCT j.queue FROM bosun.jobs AS j WHERE j.state = 'running'
             UNION SELECT unnest(s.most_common_vals::text::text[]) FROM pg_stats AS s
                   WHERE s.schemaname = 'bosun' AND s.tablename = 'jobs' AND s.attname = 'queue'
    LOOP
        FOREACH finished IN ARRAY ARRAY['completed', 'failed', 'cancelled'] LOOP
            EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM bosun.jobs WHERE queue = %L AND state = %L',
                           q, finished) INTO plan;
            queue := q;
            state := finished;
            jobs := (plan->0->'Plan'->>'Plan Rows')::bigint;
            estimated := true;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.worker_waits(queue_name text, worker text)
 RETURNS void
 LANGUAGE plpgsql
 SET lock_timeout TO '200ms'
AS $function$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
    INSERT INTO bosun.waiting_workers AS w (queue, worker)
    VALUES (queue_name, worker_waits.worker)
    ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO UPDATE SET since = now();
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.target_attach(caller text, target text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.job_lock_for(caller text, job_id bigint)
 RETURNS bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    j bosun.jobs;
BEGIN
    IF job_id IS NULL THEN
        RAISE EXCEPTION '%: id must not be null', caller USING ERRCODE = '22004';
    END IF;
    SELECT * INTO j FROM bosun.jobs WHERE jobs.id = job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no job with id %', caller, job_id USING ERRCODE = 'P0002';
    END IF;
    RETURN j;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.saga_lock_for(caller text, saga_id uuid)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.periodic_lock_for(caller text, name text)
 RETURNS bosun.periodic_jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    p bosun.periodic_jobs;
BEGIN
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

