-- Bosun 0002: the SQL API. Every function validates its arguments before it writes anything
-- and raises an error whose message starts with the function's name and names the bad
-- argument. SQLSTATEs: 22004 (an argument is NULL), 22023 (an argument has a bad value),
-- P0002 (no such job), 55000 (the job is not in a state the operation applies to).

-- The first problem with one job's fields, or NULL when they are all good. `label` prefixes
-- each field name ('' for bosun.enqueue, 'jobs[3].' for bosun.enqueue_many). NULL optional
-- fields mean "use the default" here; bosun.enqueue rejects explicit NULLs itself.
CREATE FUNCTION bosun.job_input_error(
    label text, kind text, args jsonb, queue text, priority integer, max_attempts integer,
    unique_key text, target text, tags jsonb, meta jsonb
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind IS NULL THEN
            label || 'kind must not be null'
        WHEN NOT bosun.valid_kind(kind) THEN
            format('%skind %s is invalid: use 1 to 128 letters, digits, ''_'', ''.'', '':'' or ''-'', starting with a letter, digit or ''_''',
                   label, quote_literal(kind))
        WHEN args IS NOT NULL AND jsonb_typeof(args) <> 'object' THEN
            format('%sargs must be a JSON object, got %s', label, jsonb_typeof(args))
        WHEN queue IS NOT NULL AND NOT bosun.valid_queue(queue) THEN
            format('%squeue %s is invalid: use 1 to 64 letters, digits, ''_'', ''.'' or ''-'', starting with a letter, digit or ''_''',
                   label, quote_literal(queue))
        WHEN priority NOT BETWEEN -32768 AND 32767 THEN
            format('%spriority must be between -32768 and 32767, got %s', label, priority)
        WHEN max_attempts < 1 THEN
            format('%smax_attempts must be at least 1, got %s', label, max_attempts)
        WHEN unique_key IS NOT NULL AND length(unique_key) NOT BETWEEN 1 AND 255 THEN
            format('%sunique_key must be 1 to 255 characters, got %s', label, length(unique_key))
        WHEN target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
            format('%starget must be 1 to 255 characters, got %s', label, length(target))
        WHEN tags IS NOT NULL AND jsonb_typeof(tags) <> 'array' THEN
            format('%stags must be an array of strings, got %s', label, jsonb_typeof(tags))
        WHEN tags IS NOT NULL AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(tags) AS t(tag)
                WHERE jsonb_typeof(t.tag) <> 'string' OR length(t.tag #>> '{}') NOT BETWEEN 1 AND 255) THEN
            format('%stags must be strings of 1 to 255 characters, got %s', label, tags)
        WHEN meta IS NOT NULL AND jsonb_typeof(meta) <> 'object' THEN
            format('%smeta must be a JSON object, got %s', label, jsonb_typeof(meta))
    END
$$;

-- The one insert path under bosun.enqueue, bosun.enqueue_many and the Rust client: parallel
-- arrays, one element per job, NULL elements meaning the default. Returns one row per input
-- job, in input order: its id, and whether it was inserted (false: a job with the same
-- unique_key already existed and its id is returned instead).
CREATE FUNCTION bosun.enqueue_arrays(
    kinds             text[],
    arg_objects       jsonb[]       DEFAULT NULL,
    queues            text[]        DEFAULT NULL,
    priorities        integer[]     DEFAULT NULL,
    scheduled_ats     timestamptz[] DEFAULT NULL,
    max_attempts_list integer[]     DEFAULT NULL,
    unique_keys       text[]        DEFAULT NULL,
    targets           text[]        DEFAULT NULL,
    tag_lists         jsonb[]       DEFAULT NULL,
    metas             jsonb[]       DEFAULT NULL,
    caller            text          DEFAULT 'bosun.enqueue_arrays',
    labelled          boolean       DEFAULT true
) RETURNS TABLE (id bigint, inserted boolean) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(kinds), 0);
    problem      text;
    ids          bigint[];
    inserted_ids bigint[];
    result_ids   bigint[];
    result_new   boolean[];
BEGIN
    IF kinds IS NULL THEN
        RAISE EXCEPTION '%: kinds must not be null', caller USING ERRCODE = '22004';
    END IF;
    SELECT format('%s has %s elements but kinds has %s', a.name, a.len, n) INTO problem
    FROM (VALUES ('arg_objects', cardinality(arg_objects)), ('queues', cardinality(queues)),
                 ('priorities', cardinality(priorities)), ('scheduled_ats', cardinality(scheduled_ats)),
                 ('max_attempts_list', cardinality(max_attempts_list)), ('unique_keys', cardinality(unique_keys)),
                 ('targets', cardinality(targets)), ('tag_lists', cardinality(tag_lists)),
                 ('metas', cardinality(metas))) AS a(name, len)
    WHERE a.len IS NOT NULL AND a.len <> n
    LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%: %', caller, problem USING ERRCODE = '22023';
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;

    SELECT bosun.job_input_error(
               CASE WHEN labelled THEN format('jobs[%s].', t.ord) ELSE '' END,
               t.kind, t.args, t.queue, t.priority, t.max_attempts, t.unique_key, t.target, t.tags, t.meta)
    INTO problem
    FROM unnest(kinds, arg_objects, queues, priorities, max_attempts_list, unique_keys, targets, tag_lists, metas)
         WITH ORDINALITY AS t(kind, args, queue, priority, max_attempts, unique_key, target, tags, meta, ord)
    WHERE bosun.job_input_error('', t.kind, t.args, t.queue, t.priority, t.max_attempts,
                                t.unique_key, t.target, t.tags, t.meta) IS NOT NULL
    ORDER BY t.ord
    LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%: %', caller, problem USING ERRCODE = '22023';
    END IF;

    -- Ids are taken up front, in input order, so results can be matched to inputs without
    -- relying on the order in which INSERT ... RETURNING emits rows.
    ids := ARRAY(SELECT nextval('bosun.jobs_id_seq') FROM generate_series(1, n));

    WITH ins AS (
        INSERT INTO bosun.jobs AS j (id, kind, args, queue, priority, state, max_attempts,
                                     scheduled_at, unique_key, target, tags, meta)
        SELECT t.id, t.kind, coalesce(t.args, '{}'), coalesce(t.queue, 'default'),
               coalesce(t.priority, 0)::smallint,
               CASE WHEN coalesce(t.scheduled_at, now()) > now()
                    THEN 'scheduled' ELSE 'available' END::bosun.job_state,
               coalesce(t.max_attempts, 20), coalesce(t.scheduled_at, now()),
               t.unique_key, t.target,
               coalesce(ARRAY(SELECT jsonb_array_elements_text(t.tags)), '{}'),
               coalesce(t.meta, '{}')
        FROM unnest(ids, kinds, arg_objects, queues, priorities, scheduled_ats, max_attempts_list,
                    unique_keys, targets, tag_lists, metas)
             AS t(id, kind, args, queue, priority, scheduled_at, max_attempts,
                  unique_key, target, tags, meta)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id
    )
    SELECT array_agg(ins.id) INTO inserted_ids FROM ins;

    IF coalesce(cardinality(inserted_ids), 0) = n THEN
        RETURN QUERY SELECT u.id, true FROM unnest(ids) AS u(id);
        RETURN;
    END IF;

    -- Some keys existed already (or repeat within this batch): this statement runs with a new
    -- snapshot, so it sees rows committed since the insert and rows the insert just made.
    SELECT array_agg(coalesce(ins.id, existing.id) ORDER BY t.ord),
           array_agg(ins.id IS NOT NULL ORDER BY t.ord)
    INTO result_ids, result_new
    FROM unnest(ids, unique_keys) WITH ORDINALITY AS t(id, unique_key, ord)
    LEFT JOIN unnest(inserted_ids) AS ins(id) ON ins.id = t.id
    LEFT JOIN bosun.jobs AS existing ON ins.id IS NULL AND existing.unique_key = t.unique_key;

    IF array_position(result_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION '%: unique_key % is held by a job this transaction cannot see yet; retry',
            caller, quote_literal(unique_keys[array_position(result_ids, NULL)])
            USING ERRCODE = '40001';
    END IF;
    RETURN QUERY SELECT r.id, r.inserted FROM unnest(result_ids, result_new) AS r(id, inserted);
END;
$$;

-- bosun.enqueue: one job, named arguments. `priority` is declared integer (the column is
-- smallint) so that `priority => 5` works without a cast.
CREATE FUNCTION bosun.enqueue(
    kind          text,
    args          jsonb       DEFAULT '{}',
    queue         text        DEFAULT 'default',
    priority      integer     DEFAULT 0,
    scheduled_at  timestamptz DEFAULT now(),
    max_attempts  integer     DEFAULT 20,
    unique_key    text        DEFAULT NULL,
    target        text        DEFAULT NULL,
    tags          text[]      DEFAULT '{}',
    meta          jsonb       DEFAULT '{}'
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    missing text;
    new_id  bigint;
BEGIN
    missing := CASE
        WHEN kind IS NULL THEN 'kind'
        WHEN args IS NULL THEN 'args'
        WHEN queue IS NULL THEN 'queue'
        WHEN priority IS NULL THEN 'priority'
        WHEN scheduled_at IS NULL THEN 'scheduled_at'
        WHEN max_attempts IS NULL THEN 'max_attempts'
        WHEN tags IS NULL THEN 'tags'
        WHEN meta IS NULL THEN 'meta'
    END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.enqueue: % must not be null', missing USING ERRCODE = '22004';
    END IF;
    SELECT e.id INTO new_id
    FROM bosun.enqueue_arrays(
        ARRAY[kind], ARRAY[args], ARRAY[queue], ARRAY[priority], ARRAY[scheduled_at],
        ARRAY[max_attempts], ARRAY[unique_key], ARRAY[target], ARRAY[to_jsonb(tags)], ARRAY[meta],
        caller => 'bosun.enqueue', labelled => false) AS e;
    RETURN new_id;
END;
$$;

-- bosun.enqueue_many: a JSON array of objects with bosun.enqueue's fields. Returns the ids in
-- input order. Unknown fields are rejected, so a typo does not silently use a default.
CREATE FUNCTION bosun.enqueue_many(jobs jsonb) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    problem text;
BEGIN
    IF jobs IS NULL THEN
        RAISE EXCEPTION 'bosun.enqueue_many: jobs must not be null' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(jobs) <> 'array' THEN
        RAISE EXCEPTION 'bosun.enqueue_many: jobs must be a JSON array of objects, got %',
            jsonb_typeof(jobs) USING ERRCODE = '22023';
    END IF;

    SELECT CASE
        WHEN jsonb_typeof(e.job) <> 'object' THEN
            format('jobs[%s] must be an object, got %s', e.ord, jsonb_typeof(e.job))
        ELSE (
            SELECT format('jobs[%s] has %s', e.ord, CASE
                WHEN f.key NOT IN ('kind', 'args', 'queue', 'priority', 'scheduled_at', 'max_attempts',
                                   'unique_key', 'target', 'tags', 'meta')
                    THEN format('unknown field %s', quote_literal(f.key))
                WHEN f.expected = 'number' AND jsonb_typeof(f.value) = 'number'
                    THEN format('%s %s, expected a whole number', f.key, f.value)
                ELSE format('%s of JSON type %s, expected %s', f.key, jsonb_typeof(f.value), f.expected)
            END)
            FROM (
                SELECT kv.key, kv.value,
                       CASE WHEN kv.key IN ('kind', 'queue', 'scheduled_at', 'unique_key', 'target') THEN 'string'
                            WHEN kv.key IN ('priority', 'max_attempts') THEN 'number'
                            WHEN kv.key IN ('args', 'meta') THEN 'object'
                            WHEN kv.key = 'tags' THEN 'array' END AS expected
                FROM jsonb_each(e.job) AS kv
            ) AS f
            WHERE f.expected IS NULL
               OR (jsonb_typeof(f.value) <> f.expected AND jsonb_typeof(f.value) <> 'null')
               OR (f.expected = 'number' AND jsonb_typeof(f.value) = 'number'
                   AND (f.value::numeric <> trunc(f.value::numeric)
                        OR abs(f.value::numeric) > 2147483647))
            ORDER BY f.key
            LIMIT 1)
        END
    INTO problem
    FROM jsonb_array_elements(jobs) WITH ORDINALITY AS e(job, ord)
    WHERE jsonb_typeof(e.job) <> 'object' OR EXISTS (
        SELECT 1 FROM jsonb_each(e.job) AS kv
        WHERE kv.key NOT IN ('kind', 'args', 'queue', 'priority', 'scheduled_at', 'max_attempts',
                             'unique_key', 'target', 'tags', 'meta')
           OR (jsonb_typeof(kv.value) <> 'null' AND jsonb_typeof(kv.value) <> CASE
                   WHEN kv.key IN ('kind', 'queue', 'scheduled_at', 'unique_key', 'target') THEN 'string'
                   WHEN kv.key IN ('priority', 'max_attempts') THEN 'number'
                   WHEN kv.key IN ('args', 'meta') THEN 'object'
                   ELSE 'array' END)
           OR (kv.key IN ('priority', 'max_attempts') AND jsonb_typeof(kv.value) = 'number'
               AND (kv.value::numeric <> trunc(kv.value::numeric)
                    OR abs(kv.value::numeric) > 2147483647)))
    ORDER BY e.ord
    LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.enqueue_many: %', problem USING ERRCODE = '22023';
    END IF;

    -- Timestamps are the one field whose text may not parse; find the bad one by name.
    BEGIN
        PERFORM (e.job ->> 'scheduled_at')::timestamptz
        FROM jsonb_array_elements(jobs) AS e(job);
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value THEN
        SELECT format('jobs[%s].scheduled_at %s is not a timestamp', e.ord,
                      quote_literal(e.job ->> 'scheduled_at'))
        INTO problem
        FROM jsonb_array_elements(jobs) WITH ORDINALITY AS e(job, ord)
        WHERE e.job ->> 'scheduled_at' IS NOT NULL
          AND NOT bosun.is_timestamptz(e.job ->> 'scheduled_at')
        ORDER BY e.ord LIMIT 1;
        RAISE EXCEPTION 'bosun.enqueue_many: %', coalesce(problem, 'a scheduled_at is not a timestamp')
            USING ERRCODE = '22023';
    END;

    RETURN QUERY
    SELECT r.id FROM bosun.enqueue_arrays(
        ARRAY(SELECT e.job ->> 'kind' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT nullif(e.job -> 'args', 'null') FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT e.job ->> 'queue' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT (e.job ->> 'priority')::numeric::integer FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT (e.job ->> 'scheduled_at')::timestamptz FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT (e.job ->> 'max_attempts')::numeric::integer FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT e.job ->> 'unique_key' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT e.job ->> 'target' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT nullif(e.job -> 'tags', 'null') FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        ARRAY(SELECT nullif(e.job -> 'meta', 'null') FROM jsonb_array_elements(jobs) WITH ORDINALITY e(job, ord) ORDER BY ord),
        caller => 'bosun.enqueue_many') AS r;
END;
$$;

-- Whether text parses as a timestamptz (pg_input_is_valid arrived only in PostgreSQL 16).
CREATE FUNCTION bosun.is_timestamptz(value text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM value::timestamptz;
    RETURN true;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value THEN
    RETURN false;
END;
$$;

-- Locks and returns one job for an operator function, or raises P0002 naming the function.
CREATE FUNCTION bosun.job_lock_for(caller text, job_id bigint) RETURNS bosun.jobs
    LANGUAGE plpgsql AS $$
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
$$;

-- bosun.retry_job: run a job again now. Applies to scheduled, retryable, failed, cancelled
-- and completed jobs; a finished job gets one more attempt if it had used them all. A
-- running job is refused (cancel it first); an available job is returned unchanged.
CREATE FUNCTION bosun.retry_job(id bigint) RETURNS bosun.jobs LANGUAGE plpgsql AS $$
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
$$;

-- bosun.retry_jobs: retry every job in `state` (default failed), optionally only in one
-- queue and of one kind. Returns the jobs it moved.
CREATE FUNCTION bosun.retry_jobs(
    queue text DEFAULT NULL, kind text DEFAULT NULL, state bosun.job_state DEFAULT 'failed'
) RETURNS SETOF bosun.jobs LANGUAGE plpgsql AS $$
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
$$;

-- bosun.cancel_job: stop a job that has not finished. A waiting job is cancelled at once; a
-- running one is marked cancelled too (its worker's later writes are fenced out) and its
-- worker is told on channel `bosun_control` so the handler can stop.
CREATE FUNCTION bosun.cancel_job(id bigint) RETURNS bosun.jobs LANGUAGE plpgsql AS $$
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
$$;

-- bosun.reschedule_job: move a waiting job (scheduled, available, retryable) to run at `at`.
CREATE FUNCTION bosun.reschedule_job(id bigint, at timestamptz) RETURNS bosun.jobs
    LANGUAGE plpgsql AS $$
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
$$;

-- bosun.pause_queue / bosun.resume_queue: persisted, so every replica sees it on its next
-- claim. Pausing a queue that has no jobs yet is allowed; both are idempotent.
CREATE FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean)
    RETURNS bosun.queues LANGUAGE plpgsql AS $$
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
$$;

CREATE FUNCTION bosun.pause_queue(name text) RETURNS bosun.queues LANGUAGE sql AS $$
    SELECT bosun.queue_set_paused('bosun.pause_queue', name, true)
$$;

CREATE FUNCTION bosun.resume_queue(name text) RETURNS bosun.queues LANGUAGE sql AS $$
    SELECT bosun.queue_set_paused('bosun.resume_queue', name, false)
$$;

-- Per queue: counts by state, and the age of the oldest job that is due but not yet claimed.
-- A full scan of bosun.jobs: fine for operators, not for a scrape loop.
CREATE VIEW bosun.queue_stats AS
WITH counts AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'scheduled')  AS scheduled,
           count(*) FILTER (WHERE state = 'available')  AS available,
           count(*) FILTER (WHERE state = 'running')    AS running,
           count(*) FILTER (WHERE state = 'retryable')  AS retryable,
           count(*) FILTER (WHERE state = 'completed')  AS completed,
           count(*) FILTER (WHERE state = 'failed')     AS failed,
           count(*) FILTER (WHERE state = 'cancelled')  AS cancelled,
           min(scheduled_at) FILTER (
               WHERE state IN ('available', 'scheduled', 'retryable') AND scheduled_at <= now()
           ) AS oldest_due_at
    FROM bosun.jobs
    GROUP BY queue
)
SELECT coalesce(c.queue, q.name)      AS queue,
       coalesce(q.paused, false)      AS paused,
       coalesce(c.scheduled, 0)       AS scheduled,
       coalesce(c.available, 0)       AS available,
       coalesce(c.running, 0)         AS running,
       coalesce(c.retryable, 0)       AS retryable,
       coalesce(c.completed, 0)       AS completed,
       coalesce(c.failed, 0)          AS failed,
       coalesce(c.cancelled, 0)       AS cancelled,
       now() - c.oldest_due_at        AS oldest_available_age
FROM counts AS c
FULL JOIN bosun.queues AS q ON q.name = c.queue;
