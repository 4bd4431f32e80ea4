-- Bosun 0021 down: the checks and functions as they were before it.
DROP TRIGGER jobs_target_change ON bosun.jobs;
DROP TRIGGER jobs_check ON bosun.jobs;
DROP TRIGGER jobs_check_update ON bosun.jobs;
DROP FUNCTION bosun.jobs_reject_bad_update();
DROP FUNCTION bosun.enqueue_many(jsonb, text);
DROP FUNCTION bosun.enqueue(text, jsonb, text, integer, timestamptz, integer, text, text, text[], jsonb, text);
DROP FUNCTION bosun.enqueue_unique(text, jsonb, text, integer, timestamptz, integer, text, text, text[], jsonb, text);
DROP FUNCTION bosun.enqueue_arrays(text[], jsonb[], text[], integer[], timestamptz[], integer[], text[], text[], jsonb[], jsonb[], text, boolean, text);
DROP FUNCTION bosun.job_input_error(text, text, jsonb, text, integer, integer, text, text, jsonb, jsonb, timestamptz);
ALTER TABLE bosun.jobs
    DROP CONSTRAINT max_attempts_must_be_at_most_1000000000,
    DROP CONSTRAINT waiting_job_has_an_attempt_left,
    DROP CONSTRAINT times_must_be_finite_and_before_year_10000;

CREATE OR REPLACE FUNCTION bosun.job_input_error(label text, kind text, args jsonb, queue text, priority integer, max_attempts integer, unique_key text, target text, tags jsonb, meta jsonb)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[])
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT CASE
        WHEN NOT bosun.valid_kind(kind) THEN 'kind_has_bad_format_see_bosun_valid_kind'
        WHEN NOT bosun.valid_queue(queue) THEN 'queue_has_bad_format_see_bosun_valid_queue'
        WHEN jsonb_typeof(args) <> 'object' THEN 'args_must_be_a_json_object'
        WHEN jsonb_typeof(meta) <> 'object' THEN 'meta_must_be_a_json_object'
        WHEN jsonb_typeof(errors) <> 'array' THEN 'errors_must_be_a_json_array'
        WHEN cardinality(tags) > 0 AND bosun.bad_tags(tags)
            THEN 'tags_must_be_strings_of_1_to_255_characters'
    END
$function$;

CREATE OR REPLACE FUNCTION bosun.jobs_reject_bad_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    problem text := bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors, NEW.tags);
    detail  text := bosun.job_input_error('', NEW.kind, NEW.args, NEW.queue, NEW.priority,
                                          NEW.max_attempts, NEW.unique_key, NEW.target,
                                          to_jsonb(NEW.tags), NEW.meta);
BEGIN
    RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"%', problem,
            coalesce(': ' || detail, '')
        USING ERRCODE = 'check_violation', CONSTRAINT = problem,
              SCHEMA = 'bosun', TABLE = 'jobs';
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[] DEFAULT NULL::jsonb[], queues text[] DEFAULT NULL::text[], priorities integer[] DEFAULT NULL::integer[], scheduled_ats timestamp with time zone[] DEFAULT NULL::timestamp with time zone[], max_attempts_list integer[] DEFAULT NULL::integer[], unique_keys text[] DEFAULT NULL::text[], targets text[] DEFAULT NULL::text[], tag_lists jsonb[] DEFAULT NULL::jsonb[], metas jsonb[] DEFAULT NULL::jsonb[], caller text DEFAULT 'bosun.enqueue_arrays'::text, labelled boolean DEFAULT true)
 RETURNS TABLE(id bigint, inserted boolean)
 LANGUAGE plpgsql
AS $function$
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

    -- Names are checked once per distinct value, the rest once per row: a batch of ten
    -- thousand jobs of one kind runs one regular expression, not ten thousand. Only when
    -- something is wrong does the per-row check run again, to name the first bad job.
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT k FROM unnest(kinds) AS k) AS d
               WHERE d.k IS NULL OR NOT bosun.valid_kind(d.k))
       OR EXISTS (SELECT 1 FROM (SELECT DISTINCT q FROM unnest(queues) AS q) AS d
                  WHERE d.q IS NOT NULL AND NOT bosun.valid_queue(d.q))
       OR EXISTS (SELECT 1
                  FROM unnest(arg_objects, priorities, max_attempts_list, unique_keys, targets, tag_lists, metas)
                       AS t(args, priority, max_attempts, unique_key, target, tags, meta)
                  -- job_input_error's rules written out: as a function call per row they
                  -- cost more than the insert itself. NULL means the default, never wrong.
                  WHERE jsonb_typeof(t.args) <> 'object'
                     OR t.priority NOT BETWEEN -32768 AND 32767
                     OR t.max_attempts < 1
                     OR length(t.unique_key) NOT BETWEEN 1 AND 255
                     OR length(t.target) NOT BETWEEN 1 AND 255
                     OR jsonb_typeof(t.tags) <> 'array'
                     OR jsonb_typeof(t.meta) <> 'object'
                     OR (t.tags IS NOT NULL AND EXISTS (
                            SELECT 1 FROM jsonb_array_elements(t.tags) AS e(tag)
                            WHERE jsonb_typeof(e.tag) <> 'string'
                               OR length(e.tag #>> '{}') NOT BETWEEN 1 AND 255)))
    THEN
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
        RAISE EXCEPTION '%: %', caller, problem USING ERRCODE = '22023';
    END IF;

    -- Ids are taken up front, in input order, so results can be matched to inputs without
    -- relying on the order in which INSERT ... RETURNING emits rows.
    ids := ARRAY(SELECT nextval('bosun.jobs_id_seq') FROM generate_series(1, n));

    -- The rows are checked: the table's trigger need not check them again (see jobs_check).
    PERFORM set_config('bosun.rows_checked', 'on', true);
    WITH ins AS (
        INSERT INTO bosun.jobs AS j (id, kind, args, queue, priority, state, max_attempts,
                                     scheduled_at, unique_key, target, tags, meta)
        SELECT t.id, t.kind, coalesce(t.args, '{}'), coalesce(t.queue, 'default'),
               coalesce(t.priority, 0)::smallint,
               CASE WHEN coalesce(t.scheduled_at, now()) > now()
                    THEN 'scheduled' ELSE 'available' END::bosun.job_state,
               coalesce(t.max_attempts, 20), coalesce(t.scheduled_at, now()),
               t.unique_key, t.target,
               CASE WHEN t.tags IS NULL THEN '{}' ELSE ARRAY(SELECT jsonb_array_elements_text(t.tags)) END,
               coalesce(t.meta, '{}')
        FROM unnest(ids, kinds, arg_objects, queues, priorities, scheduled_ats, max_attempts_list,
                    unique_keys, targets, tag_lists, metas)
             AS t(id, kind, args, queue, priority, scheduled_at, max_attempts,
                  unique_key, target, tags, meta)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id
    )
    SELECT array_agg(ins.id) INTO inserted_ids FROM ins;
    PERFORM set_config('bosun.rows_checked', '', true);

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
$function$;

CREATE OR REPLACE FUNCTION bosun.enqueue(kind text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, scheduled_at timestamp with time zone DEFAULT now(), max_attempts integer DEFAULT 20, unique_key text DEFAULT NULL::text, target text DEFAULT NULL::text, tags text[] DEFAULT '{}'::text[], meta jsonb DEFAULT '{}'::jsonb)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.enqueue_many(jobs jsonb)
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;


CREATE TRIGGER jobs_check BEFORE INSERT OR UPDATE OF kind, queue, args, meta, errors, tags ON bosun.jobs FOR EACH ROW WHEN (((current_setting('bosun.rows_checked'::text, true) IS DISTINCT FROM 'on'::text) AND ((new.kind !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'::text) OR (length(new.kind) > 128) OR (new.queue !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'::text) OR (length(new.queue) > 64) OR (jsonb_typeof(new.args) <> 'object'::text) OR (jsonb_typeof(new.meta) <> 'object'::text) OR (jsonb_typeof(new.errors) <> 'array'::text) OR ((cardinality(new.tags) > 0) AND bosun.bad_tags(new.tags))))) EXECUTE FUNCTION bosun.jobs_reject_bad_row();

CREATE OR REPLACE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean DEFAULT false)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
DECLARE
    may_mark     boolean := false;
    lock_timeout_was text;
    taken        bigint;
BEGIN
    IF wait IS NULL THEN
        RAISE EXCEPTION 'bosun.claim_jobs: wait must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
    IF wait THEN
        lock_timeout_was := current_setting('lock_timeout');
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
            may_mark := true;
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'bosun.claim_jobs: inserts into queue % held its waiting lock for 200 ms; worker % is not marked as waiting and polls', queue_name, worker;
        END;
        PERFORM set_config('lock_timeout', lock_timeout_was, true);
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE bosun.jobs AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = worker
        WHERE j.id = ANY(ARRAY(
            SELECT c.id
            FROM bosun.jobs AS c
            WHERE c.queue = queue_name
              AND c.state IN ('available', 'scheduled', 'retryable')
              AND c.scheduled_at <= now()
              AND c.kind = ANY(kinds)
              AND NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = queue_name AND q.paused)
            ORDER BY c.priority, c.scheduled_at, c.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING j.*
    )
    SELECT * FROM claimed AS r ORDER BY r.priority, r.scheduled_at, r.id;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF may_mark AND taken < max_jobs THEN
        -- Room left and no job left: inserts into the queue wake this worker from now on.
        INSERT INTO bosun.waiting_workers AS w (queue, worker)
        VALUES (queue_name, claim_jobs.worker)
        ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO NOTHING;
    ELSIF taken > 0 THEN
        -- Claiming, the worker is awake: enqueues need not wake it until it marks itself again.
        DELETE FROM bosun.waiting_workers AS w
        WHERE w.queue = queue_name AND w.worker = claim_jobs.worker;
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION bosun.reap_expunged(batch integer DEFAULT 1000)
 RETURNS TABLE(id bigint, kind text, queue text, target text, was_running boolean)
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION bosun.job_target_attach()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.target_attach('bosun.enqueue', NEW.target);
    RETURN NEW;
END;
$function$;

DROP FUNCTION bosun.quote_short(text);
DROP FUNCTION bosun.require_arguments(text, text[], boolean[]);
