-- Bosun 0011 down: the table's checks back as constraints, the state index, default
-- autovacuum, and the sampler as 0010 made it.
ALTER TABLE bosun.jobs RESET (
    autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor,
    autovacuum_analyze_threshold
);

CREATE INDEX IF NOT EXISTS jobs_state_queue_idx ON bosun.jobs (state, queue, kind);
DROP INDEX IF EXISTS bosun.jobs_running_idx;
CREATE INDEX jobs_running_idx ON bosun.jobs (attempted_by, id) WHERE state = 'running';

DROP TRIGGER IF EXISTS jobs_check ON bosun.jobs;
DROP FUNCTION IF EXISTS bosun.jobs_reject_bad_row();
DROP FUNCTION IF EXISTS bosun.job_row_problem(text, text, jsonb, jsonb, jsonb);

ALTER TABLE bosun.jobs
    ADD CONSTRAINT kind_has_bad_format_see_bosun_valid_kind CHECK (bosun.valid_kind(kind)),
    ADD CONSTRAINT queue_has_bad_format_see_bosun_valid_queue CHECK (bosun.valid_queue(queue)),
    ADD CONSTRAINT args_must_be_a_json_object CHECK (jsonb_typeof(args) = 'object'),
    ADD CONSTRAINT meta_must_be_a_json_object CHECK (jsonb_typeof(meta) = 'object'),
    ADD CONSTRAINT errors_must_be_a_json_array CHECK (jsonb_typeof(errors) = 'array');

CREATE OR REPLACE FUNCTION bosun.sample_queues(exact_below bigint DEFAULT 100000)
    RETURNS TABLE (queue text, state text, jobs bigint, estimated boolean)
    LANGUAGE plpgsql AS $$
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
        WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
        GROUP BY j.queue, j.state;
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
                   WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
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
$$;

CREATE OR REPLACE FUNCTION bosun.enqueue_arrays(
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
