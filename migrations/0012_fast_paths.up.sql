-- Bosun 0012: a cheaper enqueue path, a claim whose plan does not depend on statistics, and
-- a rescuer that does not read every job claimed since the last vacuum.
--
-- PostgreSQL's regular expression engine unrolls a bounded repeat such as {0,127} into that
-- many states, so matching even a four-letter kind against it cost more than inserting the
-- row (a 10,000-row insert spent half its time in the two name checks). The same rules
-- written as an unbounded character class plus a length test cost a tenth as much.
CREATE OR REPLACE FUNCTION bosun.valid_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT kind ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$' AND length(kind) <= 128 $$;

CREATE OR REPLACE FUNCTION bosun.valid_queue(queue text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' AND length(queue) <= 64 $$;

-- The table checks tags as well, so that rows written without bosun.enqueue_arrays (the
-- client's single-row insert and its COPY path, or a plain INSERT) obey every rule it does.
CREATE FUNCTION bosun.bad_tags(tags text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                   WHERE t.tag IS NULL OR length(t.tag) NOT BETWEEN 1 AND 255)
$$;

DROP TRIGGER jobs_check ON bosun.jobs;
DROP FUNCTION bosun.job_row_problem(text, text, jsonb, jsonb, jsonb);

-- The first rule a row breaks, by the name of its check; NULL when it breaks none.
CREATE FUNCTION bosun.job_row_problem(
    kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN NOT bosun.valid_kind(kind) THEN 'kind_has_bad_format_see_bosun_valid_kind'
        WHEN NOT bosun.valid_queue(queue) THEN 'queue_has_bad_format_see_bosun_valid_queue'
        WHEN jsonb_typeof(args) <> 'object' THEN 'args_must_be_a_json_object'
        WHEN jsonb_typeof(meta) <> 'object' THEN 'meta_must_be_a_json_object'
        WHEN jsonb_typeof(errors) <> 'array' THEN 'errors_must_be_a_json_array'
        WHEN cardinality(tags) > 0 AND bosun.bad_tags(tags)
            THEN 'tags_must_be_strings_of_1_to_255_characters'
    END
$$;

-- The error names the check, as a constraint would, and says what is wrong in the words of
-- bosun.enqueue.
CREATE OR REPLACE FUNCTION bosun.jobs_reject_bad_row() RETURNS trigger LANGUAGE plpgsql AS $$
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
$$;

-- The WHEN clause is job_row_problem's rules written out in built-in operators: a trigger's
-- condition is not planned, so a SQL function in it would be parsed and planned again for
-- every statement, which cost a single-row INSERT a fifth of its time. Only a row with tags
-- calls a function. A row that breaks a rule enters PL/pgSQL, which names the rule.
CREATE TRIGGER jobs_check BEFORE INSERT OR UPDATE OF kind, queue, args, meta, errors, tags
    ON bosun.jobs
    FOR EACH ROW
    WHEN (current_setting('bosun.rows_checked', true) IS DISTINCT FROM 'on'
          AND (NEW.kind !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$' OR length(NEW.kind) > 128
               OR NEW.queue !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' OR length(NEW.queue) > 64
               OR jsonb_typeof(NEW.args) <> 'object' OR jsonb_typeof(NEW.meta) <> 'object'
               OR jsonb_typeof(NEW.errors) <> 'array'
               OR (cardinality(NEW.tags) > 0 AND bosun.bad_tags(NEW.tags))))
    EXECUTE FUNCTION bosun.jobs_reject_bad_row();

-- bosun.claim_jobs: claim up to `max_jobs` due jobs of `queue_name` whose kind is one of
-- `kinds`, for `worker`; the workers' claim.
--
-- The subquery picks and locks at most max_jobs rows, skipping rows that another worker is
-- locking right now (SKIP LOCKED), so concurrent claimers never wait on each other. It walks
-- jobs_claimable_idx in claim order (priority, scheduled_at, id) and stops after max_jobs
-- rows. That is the only plan that stays fast, and the planner does not always see it: right
-- after a bulk load (no statistics yet) it expects a handful of rows and picks a bitmap scan
-- plus a sort, which with the row locks in between must sort every claimable job, on every
-- claim (150 ms for 300,000 jobs, against a fraction of a millisecond). A worker's prepared
-- statement then keeps that plan after the statistics arrive. Hence a function whose plan
-- is made with sequential and bitmap scans priced out, and without JIT compilation, which
-- the price of a path priced out (should one be the only path) would otherwise set off.
--
-- The UPDATE finds the picked rows by primary key: `id = ANY(ARRAY(...))` runs the subquery
-- once. A paused queue yields nothing. Every claim bumps `attempt`, the fencing token of the
-- worker's later writes. The claimed rows come back in claim order, the order in which the
-- worker starts them.
CREATE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text)
    RETURNS SETOF bosun.jobs LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
#variable_conflict use_column
BEGIN
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
END;
$$;

-- The rescuers look for running jobs claimed more than a lease ago, oldest first. Through
-- the running index, keyed by id for the completions, they read every entry it had, and
-- during a drain it has one for each job claimed since the last vacuum, nearly all of them
-- completed by then: 100,000 jobs drained by one worker cost the rescuers 800 ms of the
-- database's time. Keyed by the claim time, they read only the claims older than a lease.
CREATE INDEX jobs_running_since_idx ON bosun.jobs (attempted_at) WHERE state = 'running';
