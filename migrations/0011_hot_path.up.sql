-- Bosun 0011: a jobs table built for the hot path. A claim and a completion are each one
-- UPDATE per job; what an UPDATE costs is what the table makes it pay:
--
-- * Every CHECK constraint is evaluated on every UPDATE, whatever columns it sets. The name
--   checks are regular expressions and the JSON checks read (and may detoast) args, meta and
--   errors: measured with the plain-SQL claim-and-complete cycle on this table (4 connections,
--   batches of 100), they cost about a third of its throughput. They move to a trigger that
--   runs on INSERT and on an UPDATE that sets one of those columns, and never on a claim or a
--   completion. Its error is the one the constraints raised: SQLSTATE 23514 and the same
--   constraint name, so clients see no difference.
-- * An UPDATE that changes `state` cannot be HOT (state is in the claim index's predicate), so
--   it adds an entry to every index on the table that covers the new row.
--   jobs_state_queue_idx covered every row, and its work is done by the partial indexes:
--   claimable states (jobs_claimable_idx), running (jobs_running_idx), finished
--   (jobs_finalized_idx). Dropping it saves one index entry per state change.
-- * A queue table turns over all its rows: autovacuum is told to come far sooner than its
--   default (a fifth of the table dead), so that dead versions and index entries do not pile
--   up in front of the claim, and statistics follow the backlog as it grows and drains.
-- * jobs_running_idx was keyed by (attempted_by, id). Every fenced write says
--   `id = ... AND state = 'running'`, which matches that index's predicate; when statistics
--   were taken while nothing ran, the planner thinks the index empty and walks all of it
--   looking for the id (measured: it picks it over the primary key). Keyed by id, whichever
--   index the planner picks, a fenced write is one probe. Finding a worker's running jobs
--   walks the running jobs, which are never more than the replicas' slots.

ALTER TABLE bosun.jobs
    DROP CONSTRAINT kind_has_bad_format_see_bosun_valid_kind,
    DROP CONSTRAINT queue_has_bad_format_see_bosun_valid_queue,
    DROP CONSTRAINT args_must_be_a_json_object,
    DROP CONSTRAINT meta_must_be_a_json_object,
    DROP CONSTRAINT errors_must_be_a_json_array;

-- The first rule a row breaks, by the name its constraint had; NULL when it breaks none.
CREATE FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN NOT bosun.valid_kind(kind) THEN 'kind_has_bad_format_see_bosun_valid_kind'
        WHEN NOT bosun.valid_queue(queue) THEN 'queue_has_bad_format_see_bosun_valid_queue'
        WHEN jsonb_typeof(args) <> 'object' THEN 'args_must_be_a_json_object'
        WHEN jsonb_typeof(meta) <> 'object' THEN 'meta_must_be_a_json_object'
        WHEN jsonb_typeof(errors) <> 'array' THEN 'errors_must_be_a_json_array'
    END
$$;

CREATE FUNCTION bosun.jobs_reject_bad_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    problem text := bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors);
BEGIN
    RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"', problem
        USING ERRCODE = 'check_violation', CONSTRAINT = problem,
              SCHEMA = 'bosun', TABLE = 'jobs';
END;
$$;

-- The WHEN clause does the checking, so a good row never enters PL/pgSQL. NULLs fall through
-- to the NOT NULL constraints. bosun.enqueue_arrays, which has checked its rows already (and
-- names the bad job in its error), sets `bosun.rows_checked` for the length of its INSERT.
CREATE TRIGGER jobs_check BEFORE INSERT OR UPDATE OF kind, queue, args, meta, errors
    ON bosun.jobs
    FOR EACH ROW
    WHEN (current_setting('bosun.rows_checked', true) IS DISTINCT FROM 'on'
          AND bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors) IS NOT NULL)
    EXECUTE FUNCTION bosun.jobs_reject_bad_row();

DROP INDEX bosun.jobs_state_queue_idx;

DROP INDEX bosun.jobs_running_idx;
CREATE INDEX jobs_running_idx ON bosun.jobs (id) WHERE state = 'running';

ALTER TABLE bosun.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000
);

-- The backlog, counted through the partial indexes that now hold it: claimable states and
-- running ones are two index scans (one IN list over both would match neither index).
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
$$;

-- The insert path under every enqueue: names checked once per distinct value instead of once
-- per row, the table's own check skipped for rows checked here, no subquery for absent tags.
-- Measured on 10,000 jobs of one kind: see docs/performance.md (W1).
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
$$;
