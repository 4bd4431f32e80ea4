-- Bosun 0010: what the metrics sampler reads. The maintenance leader samples these on an
-- interval, so scrapes never touch the jobs table.

-- Sagas finished, by kind and outcome, kept by a trigger: a counter that survives the pruning
-- of old sagas and costs nothing to read.
CREATE TABLE bosun.saga_outcomes (
    kind    text   NOT NULL,
    outcome text   NOT NULL,
    total   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, outcome)
);

CREATE FUNCTION bosun.saga_count_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bosun.saga_outcomes AS o (kind, outcome, total)
    VALUES (NEW.kind, NEW.state::text, 1)
    ON CONFLICT (kind, outcome) DO UPDATE SET total = o.total + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sagas_count_outcome AFTER UPDATE OF state ON bosun.sagas
    FOR EACH ROW
    WHEN (NEW.state IN ('succeeded', 'compensated', 'stuck') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION bosun.saga_count_outcome();

-- Jobs per queue and state, for the `bosun_queue_jobs` gauge. States that are not finished
-- are counted exactly (they are the backlog, read through jobs_state_queue_idx). Finished
-- states are counted exactly while the table holds fewer than `exact_below` rows (by the
-- planner's estimate), and above that estimated from the planner's statistics (`estimated`
-- is then true), so that a table of millions of retained jobs costs no scan.
CREATE FUNCTION bosun.sample_queues(exact_below bigint DEFAULT 100000)
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

-- Per queue: how long the oldest job that could run now has waited (seconds).
CREATE FUNCTION bosun.sample_oldest_available()
    RETURNS TABLE (queue text, waited_secs float8) LANGUAGE sql STABLE AS $$
    SELECT j.queue, extract(epoch FROM now() - min(j.scheduled_at))::float8
    FROM bosun.jobs AS j
    WHERE j.state IN ('available', 'scheduled', 'retryable') AND j.scheduled_at <= now()
    GROUP BY j.queue
$$;
