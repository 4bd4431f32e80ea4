-- Bosun's schema as every migration together makes it, written by scripts/dump-schema (do not
-- edit: change the schema with a new migration, then run the script). Read it to see what is
-- there now; tests/migrations.rs checks that a migrated database and this file agree.
--
-- Function bodies are checked when they are called, not when they are created, so that
-- functions can come before the tables whose rows they read.
SET LOCAL check_function_bodies = off;

-- ========================================================================================
-- Types
-- ========================================================================================

CREATE TYPE bosun.job_state AS ENUM (
    'scheduled',
    'available',
    'running',
    'retryable',
    'completed',
    'failed',
    'cancelled'
);

CREATE TYPE bosun.saga_state AS ENUM (
    'running',
    'compensating',
    'succeeded',
    'compensated',
    'stuck'
);

CREATE TYPE bosun.saga_step_state AS ENUM (
    'pending',
    'running',
    'succeeded',
    'failed',
    'undoing',
    'undone',
    'undo_failed'
);

CREATE TYPE bosun.target_state AS ENUM (
    'in_service',
    'expunged'
);

-- ========================================================================================
-- Functions the tables' checks call
-- ========================================================================================

-- ========================================================================================
-- Functions the tables' checks call
-- ========================================================================================
CREATE FUNCTION bosun.valid_queue(queue text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' AND length(queue) <= 64 $$;

-- A saga kind is a job kind short enough that its step jobs' kind, `saga:<kind>`, is one too.
CREATE FUNCTION bosun.valid_saga_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT bosun.valid_kind(kind) AND length(kind) <= 122 $$;

-- Validation shared by the table's CHECK constraints and the SQL functions, so that a plain
-- INSERT and bosun.enqueue agree on what a good name is.
CREATE FUNCTION bosun.valid_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT kind ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$' AND length(kind) <= 128 $$;

-- ========================================================================================
-- Tables, their keys and sequences
-- ========================================================================================

CREATE TABLE bosun.jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    state bosun.job_state DEFAULT 'available'::bosun.job_state NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 20 NOT NULL,
    scheduled_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    attempted_at timestamp with time zone,
    finalized_at timestamp with time zone,
    attempted_by text,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    unique_key text,
    target text,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    meta jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT attempt_must_not_be_negative CHECK ((attempt >= 0)),
    CONSTRAINT finished_job_has_finalized_at CHECK (((state <> ALL (ARRAY['completed'::bosun.job_state, 'failed'::bosun.job_state, 'cancelled'::bosun.job_state])) OR (finalized_at IS NOT NULL))),
    CONSTRAINT max_attempts_must_be_at_least_1 CHECK ((max_attempts >= 1)),
    CONSTRAINT max_attempts_must_be_at_most_1000000000 CHECK ((max_attempts <= 1000000000)),
    CONSTRAINT running_job_has_an_attempt CHECK (((state <> 'running'::bosun.job_state) OR (attempt >= 1))),
    CONSTRAINT target_must_be_1_to_255_characters CHECK (((target IS NULL) OR ((length(target) >= 1) AND (length(target) <= 255)))),
    CONSTRAINT times_must_be_finite_and_before_year_10000 CHECK (((scheduled_at > '-infinity'::timestamp with time zone) AND (scheduled_at < '10000-01-01 00:00:00+00'::timestamp with time zone) AND (created_at > '-infinity'::timestamp with time zone) AND (created_at < '10000-01-01 00:00:00+00'::timestamp with time zone) AND ((attempted_at IS NULL) OR ((attempted_at > '-infinity'::timestamp with time zone) AND (attempted_at < '10000-01-01 00:00:00+00'::timestamp with time zone))) AND ((finalized_at IS NULL) OR ((finalized_at > '-infinity'::timestamp with time zone) AND (finalized_at < '10000-01-01 00:00:00+00'::timestamp with time zone))))),
    CONSTRAINT unique_key_must_be_1_to_255_characters CHECK (((unique_key IS NULL) OR ((length(unique_key) >= 1) AND (length(unique_key) <= 255)))),
    CONSTRAINT waiting_job_has_an_attempt_left CHECK (((state <> ALL (ARRAY['scheduled'::bosun.job_state, 'available'::bosun.job_state, 'retryable'::bosun.job_state])) OR (attempt < max_attempts)))
)
WITH (fillfactor='90', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_insert_scale_factor='0.02', autovacuum_analyze_scale_factor='0.02', autovacuum_analyze_threshold='1000', vacuum_truncate='false');

CREATE TABLE bosun.sagas (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    inputs jsonb DEFAULT '{}'::jsonb NOT NULL,
    state bosun.saga_state DEFAULT 'running'::bosun.saga_state NOT NULL,
    current_step integer DEFAULT 0 NOT NULL,
    cancel_requested boolean DEFAULT false NOT NULL,
    error text,
    queue text DEFAULT 'default'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    target text,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    CONSTRAINT finished_saga_has_finished_at CHECK (((state <> ALL (ARRAY['succeeded'::bosun.saga_state, 'compensated'::bosun.saga_state])) OR (finished_at IS NOT NULL))),
    CONSTRAINT saga_errors_must_be_a_json_array CHECK ((jsonb_typeof(errors) = 'array'::text)),
    CONSTRAINT saga_inputs_must_be_a_json_object CHECK ((jsonb_typeof(inputs) = 'object'::text)),
    CONSTRAINT saga_key_must_be_1_to_200_characters CHECK (((length(key) >= 1) AND (length(key) <= 200))),
    CONSTRAINT saga_kind_has_bad_format_see_bosun_valid_saga_kind CHECK (bosun.valid_saga_kind(kind)),
    CONSTRAINT saga_queue_has_bad_format_see_bosun_valid_queue CHECK (bosun.valid_queue(queue)),
    CONSTRAINT saga_target_must_be_1_to_255_characters CHECK (((target IS NULL) OR ((length(target) >= 1) AND (length(target) <= 255))))
);

CREATE TABLE bosun.targets (
    name text NOT NULL,
    kind text,
    state bosun.target_state DEFAULT 'in_service'::bosun.target_state NOT NULL,
    registered_at timestamp with time zone DEFAULT now() NOT NULL,
    expunged_at timestamp with time zone,
    reason text,
    reaped_jobs bigint DEFAULT 0 NOT NULL,
    CONSTRAINT expunged_target_has_expunged_at CHECK (((state = 'expunged'::bosun.target_state) = (expunged_at IS NOT NULL))),
    CONSTRAINT target_kind_must_be_1_to_100_characters CHECK (((kind IS NULL) OR ((length(kind) >= 1) AND (length(kind) <= 100)))),
    CONSTRAINT target_name_must_be_1_to_255_characters CHECK (((length(name) >= 1) AND (length(name) <= 255)))
);

CREATE TABLE bosun.periodic_jobs (
    name text NOT NULL,
    cron text NOT NULL,
    kind text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 20 NOT NULL,
    target text,
    enabled boolean DEFAULT true NOT NULL,
    last_slot timestamp with time zone,
    last_job_id bigint,
    next_at timestamp with time zone,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    catch_up text DEFAULT 'latest'::text NOT NULL,
    catch_up_max integer DEFAULT 100 NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    skipped_from timestamp with time zone,
    skipped_to timestamp with time zone,
    CONSTRAINT periodic_args_must_be_a_json_object CHECK ((jsonb_typeof(args) = 'object'::text)),
    CONSTRAINT periodic_catch_up_max_must_be_1_to_10000 CHECK (((catch_up_max >= 1) AND (catch_up_max <= 10000))),
    CONSTRAINT periodic_catch_up_must_be_latest_all_or_none CHECK ((catch_up = ANY (ARRAY['latest'::text, 'all'::text, 'none'::text]))),
    CONSTRAINT periodic_cron_must_be_1_to_200_characters CHECK (((length(cron) >= 1) AND (length(cron) <= 200))),
    CONSTRAINT periodic_kind_has_bad_format_see_bosun_valid_kind CHECK (bosun.valid_kind(kind)),
    CONSTRAINT periodic_max_attempts_must_be_at_least_1 CHECK ((max_attempts >= 1)),
    CONSTRAINT periodic_name_must_be_1_to_200_characters CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT periodic_queue_has_bad_format_see_bosun_valid_queue CHECK (bosun.valid_queue(queue)),
    CONSTRAINT periodic_skipped_from_must_not_be_after_skipped_to CHECK ((((skipped_from IS NULL) = (skipped_to IS NULL)) AND (skipped_from <= skipped_to))),
    CONSTRAINT periodic_target_must_be_1_to_255_characters CHECK (((target IS NULL) OR ((length(target) >= 1) AND (length(target) <= 255)))),
    CONSTRAINT periodic_timezone_must_be_1_to_64_characters CHECK (((length(timezone) >= 1) AND (length(timezone) <= 64)))
);

CREATE TABLE bosun.queues (
    name text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    paused_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT queue_has_bad_format_see_bosun_valid_queue CHECK (bosun.valid_queue(name))
);

CREATE TABLE bosun.claim_floors (
    queue text NOT NULL,
    priority smallint NOT NULL,
    scheduled_at timestamp with time zone NOT NULL,
    id bigint NOT NULL
)
WITH (fillfactor='50');

CREATE SEQUENCE bosun.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE bosun.jobs_id_seq OWNED BY bosun.jobs.id;

CREATE TABLE bosun.leaders (
    name text NOT NULL,
    worker_id text NOT NULL,
    elected_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE bosun.saga_outcomes (
    kind text NOT NULL,
    outcome text NOT NULL,
    total bigint DEFAULT 0 NOT NULL,
    shard smallint DEFAULT 0 NOT NULL
);

CREATE TABLE bosun.saga_steps (
    saga_id uuid NOT NULL,
    idx integer NOT NULL,
    name text NOT NULL,
    state bosun.saga_step_state DEFAULT 'pending'::bosun.saga_step_state NOT NULL,
    has_undo boolean DEFAULT true NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    undo_attempts integer DEFAULT 0 NOT NULL,
    output jsonb,
    error text,
    progress_pct real,
    progress_message text,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    undo_started_at timestamp with time zone,
    undone_at timestamp with time zone,
    CONSTRAINT progress_must_be_a_percentage CHECK (((progress_pct IS NULL) OR ((progress_pct >= (0)::double precision) AND (progress_pct <= (100)::double precision)))),
    CONSTRAINT step_index_must_not_be_negative CHECK ((idx >= 0))
);

CREATE TABLE bosun.served_kinds (
    kind text NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_worker text NOT NULL
);

CREATE UNLOGGED TABLE bosun.waiting_workers (
    queue text NOT NULL,
    worker text NOT NULL,
    since timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE bosun.workers (
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] DEFAULT '{}'::text[] NOT NULL,
    kinds text[] DEFAULT '{}'::text[] NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT lease_must_end_after_heartbeat CHECK ((expires_at > heartbeat_at)),
    CONSTRAINT worker_id_must_be_1_to_255_characters CHECK (((length(id) >= 1) AND (length(id) <= 255)))
);

ALTER TABLE ONLY bosun.jobs ALTER COLUMN id SET DEFAULT nextval('bosun.jobs_id_seq'::regclass);

ALTER TABLE ONLY bosun.claim_floors
    ADD CONSTRAINT claim_floors_pkey PRIMARY KEY (queue, priority);

ALTER TABLE ONLY bosun.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY bosun.leaders
    ADD CONSTRAINT leaders_pkey PRIMARY KEY (name);

ALTER TABLE ONLY bosun.periodic_jobs
    ADD CONSTRAINT periodic_jobs_pkey PRIMARY KEY (name);

ALTER TABLE ONLY bosun.queues
    ADD CONSTRAINT queues_pkey PRIMARY KEY (name);

ALTER TABLE ONLY bosun.sagas
    ADD CONSTRAINT saga_key_is_unique UNIQUE (key);

ALTER TABLE ONLY bosun.saga_outcomes
    ADD CONSTRAINT saga_outcomes_pkey PRIMARY KEY (kind, outcome, shard);

ALTER TABLE ONLY bosun.saga_steps
    ADD CONSTRAINT saga_steps_pkey PRIMARY KEY (saga_id, idx);

ALTER TABLE ONLY bosun.sagas
    ADD CONSTRAINT sagas_pkey PRIMARY KEY (id);

ALTER TABLE ONLY bosun.served_kinds
    ADD CONSTRAINT served_kinds_pkey PRIMARY KEY (kind);

ALTER TABLE ONLY bosun.targets
    ADD CONSTRAINT targets_pkey PRIMARY KEY (name);

ALTER TABLE ONLY bosun.waiting_workers
    ADD CONSTRAINT waiting_workers_pkey PRIMARY KEY (queue, worker);

ALTER TABLE ONLY bosun.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY bosun.saga_steps
    ADD CONSTRAINT saga_steps_saga_id_fkey FOREIGN KEY (saga_id) REFERENCES bosun.sagas(id) ON DELETE CASCADE;

-- ========================================================================================
-- Functions, by name
-- ========================================================================================

-- bosun.advance_claim_floor: raise the floor of lane (queue_name, lane_priority), if no
-- commit is checking it, to the lowest claimable key at or above it, but no further than the
-- transaction's start. Returns whether it moved (NULL: the lane is busy or gone). The
-- maintenance leader runs it for every lane each tick, each in a transaction of its own:
-- commits into the lane wait for the transaction's end. Only in READ COMMITTED, where each
-- statement sees what committed before it.
CREATE FUNCTION bosun.advance_claim_floor(queue_name text, lane_priority integer) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, bosun, pg_temp
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
AS $function$
DECLARE
    floor_at timestamptz;
    floor_id bigint;
    next_at timestamptz;
    next_id bigint;
BEGIN
    PERFORM bosun.require_arguments('bosun.advance_claim_floor', ARRAY['queue_name', 'lane_priority'],
        ARRAY[queue_name IS NULL, lane_priority IS NULL]);
    IF lane_priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'bosun.advance_claim_floor: lane_priority must be from -32768 to 32767, got %',
            lane_priority USING ERRCODE = '22023';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'bosun.advance_claim_floor: run it in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25000';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('bosun.claim_floors'),
                                     hashtext(queue_name || '/' || lane_priority)) THEN
        RETURN NULL;
    END IF;
    -- From here on each statement sees every commit that checked this lane.
    SELECT f.scheduled_at, f.id INTO floor_at, floor_id
    FROM bosun.claim_floors AS f
    WHERE f.queue = queue_name AND f.priority = lane_priority;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT c.scheduled_at, c.id INTO next_at, next_id
    FROM bosun.jobs AS c
    WHERE c.queue = queue_name AND c.priority = lane_priority
      AND c.state IN ('available', 'scheduled', 'retryable')
      AND (c.scheduled_at, c.id) >= (floor_at, floor_id)
    ORDER BY c.scheduled_at, c.id
    LIMIT 1;
    -- Never above the raise's start: the entries it skips are those of jobs claimed by then,
    -- and a row scheduled from then on needs no lowering to be seen.
    IF NOT FOUND OR (next_at, next_id) > (now(), -9223372036854775808) THEN
        next_at := now();
        next_id := -9223372036854775808;
    END IF;
    IF (next_at, next_id) <= (floor_at, floor_id) THEN
        RETURN false;
    END IF;
    UPDATE bosun.claim_floors AS f
    SET scheduled_at = next_at, id = next_id
    WHERE f.queue = queue_name AND f.priority = lane_priority;
    -- Losing this write in a crash leaves the floor lower, which is safe; a later durable
    -- commit makes it durable too.
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN true;
END;
$function$;

-- The table checks tags as well, so that rows written without bosun.enqueue_arrays (the
-- client's single-row insert and its COPY path, or a plain INSERT) obey every rule it does.
CREATE FUNCTION bosun.bad_tags(tags text[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                   WHERE t.tag IS NULL OR length(t.tag) NOT BETWEEN 1 AND 255);
END;
$$;

-- bosun.cancel_job: stop a job that has not finished. A waiting job is cancelled at once; a
-- running one is marked cancelled too (its worker's later writes are fenced out) and its
-- worker is told on channel `bosun_control` so the handler can stop.
CREATE FUNCTION bosun.cancel_job(id bigint)
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

-- bosun.cancel_saga: stop a running saga at its next step boundary and compensate. A running
-- step's handler is told on channel `bosun_control`. Cancelling a saga that is already
-- compensating or stuck only records the request; a finished saga is refused.
CREATE FUNCTION bosun.cancel_saga(id uuid) RETURNS bosun.sagas LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas := bosun.saga_lock_for('bosun.cancel_saga', id);
BEGIN
    IF s.state IN ('succeeded', 'compensated') THEN
        RAISE EXCEPTION 'bosun.cancel_saga: saga % already %', s.id, s.state
            USING ERRCODE = '55000';
    END IF;
    UPDATE bosun.sagas SET cancel_requested = true, updated_at = now()
    WHERE sagas.id = s.id
    RETURNING * INTO s;
    PERFORM pg_notify('bosun_control',
        json_build_object('action', 'cancel_saga', 'saga_id', s.id)::text);
    RETURN s;
END;
$$;

CREATE FUNCTION bosun.check_invariants(grace interval DEFAULT '1 minute')
 RETURNS TABLE(invariant text, subject text, detail text)
 LANGUAGE plpgsql STABLE
AS $function$
#variable_conflict use_column
BEGIN
    IF grace IS NULL THEN
        RAISE EXCEPTION 'bosun.check_invariants: grace must not be null' USING ERRCODE = '22004';
    END IF;
    IF grace < interval '0' THEN
        RAISE EXCEPTION 'bosun.check_invariants: grace must not be negative, got %', grace
            USING ERRCODE = '22023';
    END IF;

    -- A saga that has not finished moves only through its step's job.
    RETURN QUERY
    SELECT 'unfinished_saga_has_no_live_job', 'saga ' || s.id,
           format('%s saga %s is %s at step %s and none of its jobs will run; bosun.retry_saga(%L) resumes it',
                  s.kind, bosun.quote_short(s.key), s.state, s.current_step, s.id)
    FROM bosun.sagas AS s
    WHERE s.state IN ('running', 'compensating')
      AND NOT EXISTS (SELECT 1 FROM bosun.jobs AS j
                      WHERE j.unique_key = ANY(bosun.saga_job_keys(s))
                        AND j.state IN ('scheduled', 'available', 'running', 'retryable'));

    -- A finished saga's ledger is finished too.
    RETURN QUERY
    SELECT 'finished_saga_has_an_unfinished_step', 'saga ' || s.id,
           format('saga is %s but step %s (%s) is %s', s.state, st.idx, st.name, st.state)
    FROM bosun.sagas AS s
    JOIN bosun.saga_steps AS st ON st.saga_id = s.id
    WHERE (s.state = 'succeeded' AND st.state <> 'succeeded')
       OR (s.state = 'compensated' AND st.state IN ('running', 'undoing', 'succeeded', 'undo_failed'));

    -- A stuck saga waits on an undo that gave up.
    RETURN QUERY
    SELECT 'stuck_saga_has_no_failed_undo', 'saga ' || s.id,
           'saga is stuck but no step of its ledger is undo_failed'
    FROM bosun.sagas AS s
    WHERE s.state = 'stuck'
      AND NOT EXISTS (SELECT 1 FROM bosun.saga_steps AS st
                      WHERE st.saga_id = s.id AND st.state = 'undo_failed');

    -- A dead worker's jobs are rescued within its lease and a maintenance tick.
    RETURN QUERY
    SELECT 'running_job_outlived_its_worker', 'job ' || j.id,
           format('running since %s (attempt %s) under worker %s, %s', j.attempted_at, j.attempt,
                  coalesce(j.attempted_by, '(none)'),
                  CASE WHEN w.id IS NULL THEN 'which is not registered'
                       ELSE format('whose lease ended at %s', w.expires_at) END)
    FROM bosun.jobs AS j
    LEFT JOIN bosun.workers AS w ON w.id = j.attempted_by
    WHERE j.state = 'running'
      AND j.attempted_at < now() - grace
      AND (w.id IS NULL OR w.expires_at < now() - grace);

    -- Work on an expunged target is reaped.
    RETURN QUERY
    SELECT 'job_of_expunged_target_can_run', 'job ' || j.id,
           format('job is %s on target %s, expunged at %s', j.state, bosun.quote_short(t.name),
                  t.expunged_at)
    FROM bosun.jobs AS j
    JOIN bosun.targets AS t ON t.name = j.target AND t.state = 'expunged'
    WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
      AND t.expunged_at < now() - grace;

    -- A job that may still run reads back: it breaks no rule of the table's checks.
    RETURN QUERY
    SELECT 'unfinished_job_breaks_a_rule', 'job ' || j.id,
           format('job is %s and breaks %s', j.state,
                  bosun.job_row_problem(j.kind, j.queue, j.args, j.meta, j.errors, j.tags))
    FROM bosun.jobs AS j
    WHERE j.state IN ('scheduled', 'available', 'running', 'retryable')
      AND bosun.job_row_problem(j.kind, j.queue, j.args, j.meta, j.errors, j.tags) IS NOT NULL;

    -- A schedule's slots only move forward: the last one fired is before the next.
    RETURN QUERY
    SELECT 'periodic_last_slot_is_ahead_of_its_next', 'periodic ' || p.name,
           format('last slot %s is not before the next %s', p.last_slot, p.next_at)
    FROM bosun.periodic_jobs AS p
    WHERE p.last_slot IS NOT NULL AND p.next_at IS NOT NULL AND p.last_slot >= p.next_at;

    -- Counters count at least the rows they counted (rows are pruned, counts are not).
    RETURN QUERY
    SELECT 'saga_count_is_below_its_rows', format('sagas %s %s', r.kind, r.state),
           format('%s sagas of kind %s are %s, but bosun.saga_outcomes counts %s', r.n, r.kind,
                  r.state, coalesce(c.total, 0))
    FROM (SELECT s.kind, s.state::text AS state, count(*) AS n FROM bosun.sagas AS s
          WHERE s.state IN ('succeeded', 'compensated', 'stuck')
          GROUP BY s.kind, s.state) AS r
    LEFT JOIN (SELECT o.kind, o.outcome, sum(o.total) AS total FROM bosun.saga_outcomes AS o
               GROUP BY o.kind, o.outcome) AS c ON c.kind = r.kind AND c.outcome = r.state
    WHERE r.n > coalesce(c.total, 0);

    RETURN QUERY
    SELECT 'reaped_count_is_below_its_rows', 'target ' || t.name,
           format('%s jobs of target %s were reaped, but it counts %s', r.n,
                  bosun.quote_short(t.name), t.reaped_jobs)
    FROM (SELECT j.target, count(*) AS n FROM bosun.jobs AS j
          WHERE j.target IS NOT NULL AND j.state = 'failed'
            AND j.errors @> '[{"kind": "target_expunged"}]'
          GROUP BY j.target) AS r
    JOIN bosun.targets AS t ON t.name = r.target
    WHERE r.n > t.reaped_jobs;
END;
$function$;

-- bosun.claim: claim up to `max_jobs` due jobs for the registered `worker`, from `queues` in
-- the order given, of `kinds` (default: the kinds the worker registered). Each comes back
-- `running`, its `attempt` counted: (id, attempt) is the lease every later call names. The
-- worker must hold a live registration (bosun.worker_heartbeat): a claim nobody heartbeats
-- for would only wait for the rescuer. With `wait`, a queue that comes back short marks the
-- worker as waiting on it in the same transaction, so that the next insert into it notifies
-- channel `bosun_jobs` (a worker that LISTENs there can then sleep until then).
CREATE FUNCTION bosun.claim(worker text, queues text[], max_jobs integer, kinds text[] DEFAULT NULL,
                            wait boolean DEFAULT false)
 RETURNS SETOF bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    registered text[];
    queue_name text;
    taken bigint := 0;
    j bosun.jobs;
BEGIN
    PERFORM bosun.require_arguments('bosun.claim', ARRAY['worker', 'queues', 'max_jobs', 'wait'],
        ARRAY[worker IS NULL, queues IS NULL, max_jobs IS NULL, wait IS NULL]);
    IF array_position(queues, NULL) IS NOT NULL OR array_position(kinds, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.claim: queues and kinds must not hold nulls' USING ERRCODE = '22004';
    END IF;
    IF max_jobs < 0 OR max_jobs > 10000 THEN
        RAISE EXCEPTION 'bosun.claim: max_jobs must be 0 to 10000, got %', max_jobs
            USING ERRCODE = '22023';
    END IF;
    SELECT w.kinds INTO registered
    FROM bosun.workers AS w WHERE w.id = worker AND w.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bosun.claim: worker % holds no live registration: call bosun.worker_heartbeat first',
            bosun.quote_short(worker) USING ERRCODE = '55000';
    END IF;
    FOREACH queue_name IN ARRAY queues LOOP
        EXIT WHEN taken >= max_jobs;
        FOR j IN SELECT * FROM bosun.claim_jobs(queue_name, max_jobs - taken,
                                                coalesce(kinds, registered), worker, wait) LOOP
            taken := taken + 1;
            RETURN NEXT j;
        END LOOP;
    END LOOP;
END;
$function$;

-- The lane of the row that fired it may have a row at (least(its scheduled_at, now()), any
-- id): lower the floor to there, or make the lane. Fired at commit.
CREATE FUNCTION bosun.claim_floor_lower() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, bosun, pg_temp
AS $function$
DECLARE
    at timestamptz := least(NEW.scheduled_at, now());
    floor_at timestamptz;
BEGIN
    -- Held to the end of the commit: no raise runs between this check and the rows' being
    -- visible to it.
    PERFORM pg_advisory_xact_lock_shared(hashtext('bosun.claim_floors'),
                                         hashtext(NEW.queue || '/' || NEW.priority));
    SELECT f.scheduled_at INTO floor_at
    FROM bosun.claim_floors AS f
    WHERE f.queue = NEW.queue AND f.priority = NEW.priority;
    IF NOT FOUND THEN
        INSERT INTO bosun.claim_floors AS f (queue, priority, scheduled_at, id)
        VALUES (NEW.queue, NEW.priority, at, -9223372036854775808)
        ON CONFLICT (queue, priority) DO UPDATE
            SET scheduled_at = excluded.scheduled_at, id = excluded.id
            WHERE f.scheduled_at >= excluded.scheduled_at;
    ELSIF floor_at >= at THEN
        UPDATE bosun.claim_floors AS f
        SET scheduled_at = at, id = -9223372036854775808
        WHERE f.queue = NEW.queue AND f.priority = NEW.priority
          AND (f.scheduled_at, f.id) > (at, -9223372036854775808);
    END IF;
    RETURN NULL;
END;
$function$;

-- bosun.claim_jobs: the claim, lane by lane from their floors in priority order; otherwise
-- as 0002 has it (arguments checked, claims of one worker on one queue take turns, the
-- waiting mark).
CREATE FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean DEFAULT false)
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
    taken        bigint := 0;
    n            bigint;
    lanes        bosun.claim_floors[];
    lane         bosun.claim_floors;
BEGIN
    IF queue_name IS NULL OR max_jobs IS NULL OR kinds IS NULL OR worker IS NULL OR wait IS NULL THEN
        RAISE EXCEPTION 'bosun.claim_jobs: % must not be null',
            CASE WHEN queue_name IS NULL THEN 'queue_name' WHEN max_jobs IS NULL THEN 'max_jobs'
                 WHEN kinds IS NULL THEN 'kinds' WHEN worker IS NULL THEN 'worker' ELSE 'wait' END
            USING ERRCODE = '22004';
    END IF;
    IF max_jobs < 0 THEN
        RAISE EXCEPTION 'bosun.claim_jobs: max_jobs must not be negative, got %', max_jobs
            USING ERRCODE = '22023';
    END IF;
    -- Claims of one worker on one queue take turns. Whether this one waited for another's
    -- turn is noted for the caller: that other claim took the due jobs first.
    IF pg_try_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name)) THEN
        PERFORM set_config('bosun.claim_waited', 'off', true);
    ELSE
        PERFORM set_config('bosun.claim_waited', 'on', true);
        PERFORM pg_advisory_xact_lock(hashtext('bosun.claim_jobs'), hashtext(worker || '/' || queue_name));
    END IF;
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
    -- One read of the queue's lanes, in priority order (65 at most: enough to tell).
    lanes := ARRAY(SELECT f FROM bosun.claim_floors AS f WHERE f.queue = queue_name
                   ORDER BY f.priority LIMIT 65);
    IF cardinality(lanes) > 64 THEN
        -- So many priorities that one walk from the queue's head costs less than a walk per lane.
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
    ELSIF NOT EXISTS (SELECT 1 FROM bosun.queues AS q WHERE q.name = queue_name AND q.paused) THEN
        FOREACH lane IN ARRAY lanes LOOP
            EXIT WHEN taken >= max_jobs;
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
                      AND c.priority = lane.priority
                      AND (c.scheduled_at, c.id) >= (lane.scheduled_at, lane.id)
                      AND c.state IN ('available', 'scheduled', 'retryable')
                      AND c.scheduled_at <= now()
                      AND c.kind = ANY(kinds)
                    ORDER BY c.scheduled_at, c.id
                    LIMIT max_jobs - taken
                    FOR UPDATE SKIP LOCKED
                ))
                RETURNING j.*
            )
            SELECT * FROM claimed AS r ORDER BY r.scheduled_at, r.id;
            GET DIAGNOSTICS n = ROW_COUNT;
            taken := taken + n;
        END LOOP;
    END IF;
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

-- bosun.complete_job: the attempt succeeded. True if it was the running one (and the job is
-- now `completed`); false if the job was cancelled, retried or taken over meanwhile.
CREATE FUNCTION bosun.complete_job(job_id bigint, job_attempt integer) RETURNS boolean
    LANGUAGE plpgsql
    SET plan_cache_mode TO force_custom_plan
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.complete_job', ARRAY['job_id', 'job_attempt'],
        ARRAY[job_id IS NULL, job_attempt IS NULL]);
    UPDATE bosun.jobs
    SET state = 'completed', finalized_at = now()
    WHERE id = job_id AND state = 'running' AND attempt = job_attempt;
    RETURN FOUND;
END;
$function$;

-- Delete a saga that has not started any step, and its job: returns the deleted row.
CREATE FUNCTION bosun.delete_saga(id uuid) RETURNS bosun.sagas
    LANGUAGE plpgsql AS $$
DECLARE
    s bosun.sagas := bosun.saga_lock_for('bosun.delete_saga', id);
BEGIN
    IF s.state <> 'running'
       OR EXISTS (SELECT 1 FROM bosun.saga_steps AS st WHERE st.saga_id = s.id AND st.state <> 'pending')
       OR EXISTS (SELECT 1 FROM bosun.jobs AS j
                  WHERE j.unique_key = ANY(bosun.saga_job_keys(s))
                    AND (j.state = 'running' OR j.attempt > 0)) THEN
        RAISE EXCEPTION 'bosun.delete_saga: saga % has started (it is %); only a saga that never ran a step can be deleted: cancel it instead (bosun.cancel_saga)',
            s.id, s.state USING ERRCODE = '55000';
    END IF;
    DELETE FROM bosun.jobs AS j WHERE j.unique_key = ANY(bosun.saga_job_keys(s));
    DELETE FROM bosun.sagas AS x WHERE x.id = s.id;
    RETURN s;
END;
$$;

-- bosun.enqueue: one job, named arguments. `priority` is declared integer (the column is
-- smallint) so that `priority => 5` works without a cast.
CREATE FUNCTION bosun.enqueue(kind text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, scheduled_at timestamp with time zone DEFAULT now(), max_attempts integer DEFAULT 20, unique_key text DEFAULT NULL::text, target text DEFAULT NULL::text, tags text[] DEFAULT '{}'::text[], meta jsonb DEFAULT '{}'::jsonb, on_conflict text DEFAULT 'return_existing')
 RETURNS bigint
 LANGUAGE sql
AS $function$
    SELECT u.id FROM bosun.enqueue_unique(kind, args, queue, priority, scheduled_at, max_attempts,
                                          unique_key, target, tags, meta, on_conflict) AS u
$function$;
ALTER FUNCTION bosun.enqueue(text, jsonb, text, integer, timestamp with time zone, integer, text, text, text[], jsonb, text) SECURITY DEFINER;
ALTER FUNCTION bosun.enqueue(text, jsonb, text, integer, timestamp with time zone, integer, text, text, text[], jsonb, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- The insert path under every enqueue: the rows of a batch, checked (names once per distinct
-- value rather than once per row), inserted, and matched to their ids in input order. A
-- taken unique key returns the job that holds it ('return_existing'), or with
-- 'error_if_different' raises 23505 when that job differs in kind, args, queue or target.
CREATE FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[] DEFAULT NULL::jsonb[], queues text[] DEFAULT NULL::text[], priorities integer[] DEFAULT NULL::integer[], scheduled_ats timestamp with time zone[] DEFAULT NULL::timestamp with time zone[], max_attempts_list integer[] DEFAULT NULL::integer[], unique_keys text[] DEFAULT NULL::text[], targets text[] DEFAULT NULL::text[], tag_lists jsonb[] DEFAULT NULL::jsonb[], metas jsonb[] DEFAULT NULL::jsonb[], caller text DEFAULT 'bosun.enqueue_arrays'::text, labelled boolean DEFAULT true, on_conflict text DEFAULT 'return_existing')
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
    IF caller IS NULL OR labelled IS NULL THEN
        PERFORM bosun.require_arguments('bosun.enqueue_arrays', ARRAY['caller', 'labelled'],
                                        ARRAY[caller IS NULL, labelled IS NULL]);
    END IF;
    IF kinds IS NULL THEN
        RAISE EXCEPTION '%: kinds must not be null', caller USING ERRCODE = '22004';
    END IF;
    IF on_conflict IS NULL THEN
        RAISE EXCEPTION '%: on_conflict must not be null', caller USING ERRCODE = '22004';
    END IF;
    IF on_conflict NOT IN ('return_existing', 'error_if_different') THEN
        RAISE EXCEPTION '%: on_conflict must be ''return_existing'' or ''error_if_different'', got %',
            caller, bosun.quote_short(on_conflict) USING ERRCODE = '22023';
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
                  FROM unnest(arg_objects, priorities, max_attempts_list, unique_keys, targets, tag_lists, metas, scheduled_ats)
                       AS t(args, priority, max_attempts, unique_key, target, tags, meta, scheduled_at)
                  -- job_input_error's rules written out: as a function call per row they
                  -- cost more than the insert itself. NULL means the default, never wrong.
                  WHERE jsonb_typeof(t.args) <> 'object'
                     OR jsonb_path_exists(t.args, 'strict $.**{101}')
                     OR t.priority NOT BETWEEN -32768 AND 32767
                     OR t.max_attempts NOT BETWEEN 1 AND 1000000000
                     OR NOT (t.scheduled_at > '-infinity' AND t.scheduled_at < '10000-01-01 00:00:00+00')
                     OR length(t.unique_key) NOT BETWEEN 1 AND 255
                     OR length(t.target) NOT BETWEEN 1 AND 255
                     OR jsonb_typeof(t.tags) <> 'array'
                     OR jsonb_typeof(t.meta) <> 'object'
                     OR jsonb_path_exists(t.meta, 'strict $.**{101}')
                     OR (t.tags IS NOT NULL AND EXISTS (
                            SELECT 1 FROM jsonb_array_elements(t.tags) AS e(tag)
                            WHERE jsonb_typeof(e.tag) <> 'string'
                               OR length(e.tag #>> '{}') NOT BETWEEN 1 AND 255)))
    THEN
        SELECT bosun.job_input_error(
                   CASE WHEN labelled THEN format('jobs[%s].', t.ord) ELSE '' END,
                   t.kind, t.args, t.queue, t.priority, t.max_attempts, t.unique_key, t.target,
                   t.tags, t.meta, t.scheduled_at)
        INTO problem
        FROM unnest(kinds, arg_objects, queues, priorities, max_attempts_list, unique_keys, targets, tag_lists, metas, scheduled_ats)
             WITH ORDINALITY AS t(kind, args, queue, priority, max_attempts, unique_key, target, tags, meta, scheduled_at, ord)
        WHERE bosun.job_input_error('', t.kind, t.args, t.queue, t.priority, t.max_attempts,
                                    t.unique_key, t.target, t.tags, t.meta, t.scheduled_at) IS NOT NULL
        ORDER BY t.ord
        LIMIT 1;
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
            caller, bosun.quote_short(unique_keys[array_position(result_ids, NULL)])
            USING ERRCODE = '40001';
    END IF;

    IF on_conflict = 'error_if_different' THEN
        SELECT format('unique_key %s is held by job %s, with %s', bosun.quote_short(e.unique_key), e.id,
                      concat_ws(', ',
                          CASE WHEN e.kind IS DISTINCT FROM t.kind
                               THEN format('other kind: %s (given %s)', bosun.quote_short(e.kind), bosun.quote_short(t.kind)) END,
                          CASE WHEN e.args IS DISTINCT FROM coalesce(t.args, '{}')
                               THEN format('other args: %s (given %s)', bosun.quote_short(e.args::text),
                                           bosun.quote_short(coalesce(t.args, '{}')::text)) END,
                          CASE WHEN e.queue IS DISTINCT FROM coalesce(t.queue, 'default')
                               THEN format('other queue: %s (given %s)', bosun.quote_short(e.queue),
                                           bosun.quote_short(coalesce(t.queue, 'default'))) END,
                          CASE WHEN e.target IS DISTINCT FROM t.target
                               THEN format('other target: %s (given %s)', bosun.quote_short(e.target),
                                           bosun.quote_short(t.target)) END))
        INTO problem
        FROM unnest(result_ids, result_new, kinds, arg_objects, queues, targets)
             WITH ORDINALITY AS t(id, inserted, kind, args, queue, target, ord)
        JOIN bosun.jobs AS e ON e.id = t.id
        WHERE NOT t.inserted
          AND (e.kind IS DISTINCT FROM t.kind OR e.args IS DISTINCT FROM coalesce(t.args, '{}')
               OR e.queue IS DISTINCT FROM coalesce(t.queue, 'default')
               OR e.target IS DISTINCT FROM t.target)
        ORDER BY t.ord
        LIMIT 1;
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION '%: %', caller, problem USING ERRCODE = '23505';
        END IF;
    END IF;
    RETURN QUERY SELECT r.id, r.inserted FROM unnest(result_ids, result_new) AS r(id, inserted);
END;
$function$;
ALTER FUNCTION bosun.enqueue_arrays(text[], jsonb[], text[], integer[], timestamp with time zone[], integer[], text[], text[], jsonb[], jsonb[], text, boolean, text) SECURITY DEFINER;
ALTER FUNCTION bosun.enqueue_arrays(text[], jsonb[], text[], integer[], timestamp with time zone[], integer[], text[], text[], jsonb[], jsonb[], text, boolean, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- bosun.enqueue_many: a JSON array of objects with bosun.enqueue's fields. Returns the ids in
-- input order. Unknown fields are rejected, so a typo does not silently use a default.
CREATE FUNCTION bosun.enqueue_many(jobs jsonb, on_conflict text DEFAULT 'return_existing')
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    problem text;
BEGIN
    IF jobs IS NULL OR on_conflict IS NULL THEN
        RAISE EXCEPTION 'bosun.enqueue_many: % must not be null',
            CASE WHEN jobs IS NULL THEN 'jobs' ELSE 'on_conflict' END USING ERRCODE = '22004';
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
        caller => 'bosun.enqueue_many', on_conflict => on_conflict) AS r;
END;
$function$;
ALTER FUNCTION bosun.enqueue_many(jsonb, text) SECURITY DEFINER;
ALTER FUNCTION bosun.enqueue_many(jsonb, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- One job: its id, and whether this call inserted it or found its unique key taken.
CREATE FUNCTION bosun.enqueue_unique(kind text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, scheduled_at timestamp with time zone DEFAULT now(), max_attempts integer DEFAULT 20, unique_key text DEFAULT NULL::text, target text DEFAULT NULL::text, tags text[] DEFAULT '{}'::text[], meta jsonb DEFAULT '{}'::jsonb, on_conflict text DEFAULT 'return_existing')
 RETURNS TABLE(id bigint, inserted boolean)
 LANGUAGE plpgsql
AS $function$
DECLARE
    missing text;
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
    RETURN QUERY
    SELECT e.id, e.inserted
    FROM bosun.enqueue_arrays(
        ARRAY[kind], ARRAY[args], ARRAY[queue], ARRAY[priority], ARRAY[scheduled_at],
        ARRAY[max_attempts], ARRAY[unique_key], ARRAY[target], ARRAY[to_jsonb(tags)], ARRAY[meta],
        caller => 'bosun.enqueue', labelled => false, on_conflict => on_conflict) AS e;
END;
$function$;
ALTER FUNCTION bosun.enqueue_unique(text, jsonb, text, integer, timestamp with time zone, integer, text, text, text[], jsonb, text) SECURITY DEFINER;
ALTER FUNCTION bosun.enqueue_unique(text, jsonb, text, integer, timestamp with time zone, integer, text, text, text[], jsonb, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- bosun.expunge_target: the target is gone for good. Final and idempotent: expunging it again
-- returns it unchanged (first reason and time kept). The maintenance leader is woken on
-- channel `bosun_control` to reap the work on it at once.
CREATE FUNCTION bosun.expunge_target(name text, reason text DEFAULT NULL) RETURNS bosun.targets
    LANGUAGE plpgsql AS $$
DECLARE
    t bosun.targets;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.expunge_target: name must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO t FROM bosun.targets AS x WHERE x.name = expunge_target.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bosun.expunge_target: no target named %; bosun targets lists them',
            quote_literal(name) USING ERRCODE = 'P0002';
    END IF;
    IF t.state = 'expunged' THEN
        RETURN t;
    END IF;
    UPDATE bosun.targets AS x
    SET state = 'expunged', expunged_at = now(), reason = expunge_target.reason
    WHERE x.name = t.name
    RETURNING * INTO t;
    PERFORM pg_notify('bosun_control',
        json_build_object('action', 'target_expunged', 'target', t.name)::text);
    RETURN t;
END;
$$;

-- bosun.fail_job: the attempt failed with `error` (kept to 4096 characters, in the job's
-- errors with the attempt, the time, the worker and `error_kind`, by default `error`, or
-- `permanent`). The job becomes `failed` when the error is `permanent` or it has used its
-- attempts; otherwise `retryable` after `retry_in` (0 to 36525 days; default: attempt^4
-- seconds, at least 1, at most a day), with +/-10% jitter. Returns the new state and, for a retry, the seconds
-- until it is due; no row if the attempt is no longer the running one.
CREATE FUNCTION bosun.fail_job(job_id bigint, job_attempt integer, error text,
                               permanent boolean DEFAULT false, retry_in interval DEFAULT NULL,
                               error_kind text DEFAULT NULL)
 RETURNS TABLE(state bosun.job_state, due_in double precision)
 LANGUAGE plpgsql
 SET plan_cache_mode TO force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM bosun.require_arguments('bosun.fail_job',
        ARRAY['job_id', 'job_attempt', 'error', 'permanent'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, error IS NULL, permanent IS NULL]);
    IF retry_in < interval '0' OR retry_in > interval '36525 days' THEN
        RAISE EXCEPTION 'bosun.fail_job: retry_in must be 0 to 36525 days, got %', retry_in
            USING ERRCODE = '22023';
    END IF;
    IF length(error_kind) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'bosun.fail_job: error_kind must be 1 to 64 characters'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN 'failed'
                     ELSE 'retryable' END::bosun.job_state,
        scheduled_at = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN j.scheduled_at
                            ELSE now() + coalesce(fail_job.retry_in,
                                     make_interval(secs => greatest(1, least(86400, power(j.attempt, 4)))))
                                 * (0.9 + random() * 0.2)
                       END,
        finalized_at = CASE WHEN fail_job.permanent OR j.attempt >= j.max_attempts THEN now() END,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', left(fail_job.error, 4096),
            'worker', j.attempted_by,
            'kind', coalesce(fail_job.error_kind,
                             CASE WHEN fail_job.permanent THEN 'permanent' ELSE 'error' END)))
    WHERE j.id = fail_job.job_id AND j.state = 'running' AND j.attempt = fail_job.job_attempt
    RETURNING j.state,
              CASE WHEN j.state = 'retryable'
                   THEN extract(epoch FROM j.scheduled_at - now())::float8 END;
END;
$function$;

-- bosun.give_back_jobs: hand held jobs back to their queues at shutdown (`available` now,
-- the attempt not counted), fenced pairwise by `ids` and `attempts`; a job at the most
-- attempts a job may have fails instead. Returns the ids handed back, and wakes their queues.
CREATE FUNCTION bosun.give_back_jobs(ids bigint[], attempts integer[]) RETURNS SETOF bigint
    LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.give_back_jobs', ARRAY['ids', 'attempts'],
        ARRAY[ids IS NULL, attempts IS NULL]);
    IF cardinality(ids) <> cardinality(attempts) THEN
        RAISE EXCEPTION 'bosun.give_back_jobs: ids and attempts must have the same length'
            USING ERRCODE = '22023';
    END IF;
    IF array_position(ids, NULL) IS NOT NULL OR array_position(attempts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.give_back_jobs: ids and attempts must not hold nulls' USING ERRCODE = '22004';
    END IF;
    RETURN QUERY
    WITH released AS (
        UPDATE bosun.jobs AS j
        SET state = CASE WHEN j.attempt < 1000000000 THEN 'available'
                         ELSE 'failed' END::bosun.job_state,
            scheduled_at = CASE WHEN j.attempt < 1000000000 THEN now() ELSE j.scheduled_at END,
            max_attempts = least(j.max_attempts + 1, 1000000000),
            finalized_at = CASE WHEN j.attempt < 1000000000 THEN NULL ELSE now() END,
            errors = CASE WHEN j.attempt < 1000000000 THEN j.errors
                          ELSE j.errors || jsonb_build_array(jsonb_build_object(
                              'attempt', j.attempt, 'at', now(),
                              'error', 'handed back, but the job has used the most attempts a job may have (1000000000)',
                              'worker', j.attempted_by, 'kind', 'handed_back'))
                     END
        FROM unnest(ids, attempts) AS h(id, attempt)
        WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running'
        RETURNING j.id, j.queue, j.state
    ), woken AS (
        SELECT bosun.notify_queues(ARRAY(
            SELECT DISTINCT queue FROM released WHERE state = 'available'))
    )
    SELECT released.id FROM released, woken WHERE released.state = 'available';
END;
$function$;

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

-- The first problem with one job's fields, or NULL when they are all good. `label` prefixes
-- each field name ('' for bosun.enqueue, 'jobs[3].' for bosun.enqueue_many). NULL optional
-- fields mean "use the default" here; bosun.enqueue rejects explicit NULLs itself.
CREATE FUNCTION bosun.job_input_error(label text, kind text, args jsonb, queue text, priority integer, max_attempts integer, unique_key text, target text, tags jsonb, meta jsonb, scheduled_at timestamptz)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT CASE
        WHEN kind IS NULL THEN
            label || 'kind must not be null'
        WHEN NOT bosun.valid_kind(kind) THEN
            format('%skind %s is invalid: use 1 to 128 letters, digits, ''_'', ''.'', '':'' or ''-'', starting with a letter, digit or ''_''',
                   label, bosun.quote_short(kind))
        WHEN args IS NOT NULL AND jsonb_typeof(args) <> 'object' THEN
            format('%sargs must be a JSON object, got %s', label, jsonb_typeof(args))
        WHEN jsonb_path_exists(args, 'strict $.**{101}') THEN
            format('%sargs nests deeper than 100 levels', label)
        WHEN queue IS NOT NULL AND NOT bosun.valid_queue(queue) THEN
            format('%squeue %s is invalid: use 1 to 64 letters, digits, ''_'', ''.'' or ''-'', starting with a letter, digit or ''_''',
                   label, bosun.quote_short(queue))
        WHEN priority NOT BETWEEN -32768 AND 32767 THEN
            format('%spriority must be between -32768 and 32767, got %s', label, priority)
        WHEN max_attempts < 1 THEN
            format('%smax_attempts must be at least 1, got %s', label, max_attempts)
        WHEN max_attempts > 1000000000 THEN
            format('%smax_attempts must be at most 1000000000, got %s', label, max_attempts)
        WHEN NOT (scheduled_at > '-infinity' AND scheduled_at < '10000-01-01 00:00:00+00') THEN
            format('%sscheduled_at must be a finite time before the year 10000, got %s', label, scheduled_at)
        WHEN unique_key IS NOT NULL AND length(unique_key) NOT BETWEEN 1 AND 255 THEN
            format('%sunique_key must be 1 to 255 characters, got %s', label, length(unique_key))
        WHEN target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
            format('%starget must be 1 to 255 characters, got %s', label, length(target))
        WHEN tags IS NOT NULL AND jsonb_typeof(tags) <> 'array' THEN
            format('%stags must be an array of strings, got %s', label, jsonb_typeof(tags))
        WHEN tags IS NOT NULL AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(tags) AS t(tag)
                WHERE jsonb_typeof(t.tag) <> 'string' OR length(t.tag #>> '{}') NOT BETWEEN 1 AND 255) THEN
            format('%stags must be strings of 1 to 255 characters, got %s', label,
                   bosun.quote_short(tags::text))
        WHEN meta IS NOT NULL AND jsonb_typeof(meta) <> 'object' THEN
            format('%smeta must be a JSON object, got %s', label, jsonb_typeof(meta))
        WHEN jsonb_path_exists(meta, 'strict $.**{101}') THEN
            format('%smeta nests deeper than 100 levels', label)
    END
$function$;

-- Locks and returns one job for an operator function, or raises P0002 naming the function.
CREATE FUNCTION bosun.job_lock_for(caller text, job_id bigint)
 RETURNS bosun.jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    j bosun.jobs;
BEGIN
    IF job_lock_for.caller IS NULL THEN
        PERFORM bosun.require_arguments('bosun.job_lock_for', ARRAY['caller'], ARRAY[job_lock_for.caller IS NULL]);
    END IF;
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

-- bosun.job_progress: note how far the running attempt has come, as `progress` (a JSON value
-- of at most 8192 bytes) under the key `progress` of the job's meta, for operators and
-- dashboards. True if the attempt is the running one.
CREATE FUNCTION bosun.job_progress(job_id bigint, job_attempt integer, progress jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.job_progress',
        ARRAY['job_id', 'job_attempt', 'progress'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, progress IS NULL]);
    IF octet_length(progress::text) > 8192 THEN
        RAISE EXCEPTION 'bosun.job_progress: progress must be at most 8192 bytes as JSON'
            USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.jobs
    SET meta = jsonb_set(meta, '{progress}', progress)
    WHERE id = job_id AND state = 'running' AND attempt = job_attempt;
    RETURN FOUND;
END;
$function$;

-- Refuse to make a job of an expunged target run again.
CREATE FUNCTION bosun.job_refuse_expunged(caller text, j bosun.jobs) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    gone text := bosun.target_gone_reason(j.target);
BEGIN
    IF caller IS NULL OR (j).id IS NULL THEN
        PERFORM bosun.require_arguments('bosun.job_refuse_expunged', ARRAY['caller', 'j'],
                                        ARRAY[caller IS NULL, (j).id IS NULL]);
    END IF;
    IF gone IS NOT NULL THEN
        RAISE EXCEPTION '%: job % cannot run again: %', caller, j.id, gone
            USING ERRCODE = '55000';
    END IF;
END;
$$;

-- Refuse an operator's job command on a saga's step job, naming the saga command instead.
CREATE FUNCTION bosun.job_refuse_saga_step(caller text, j bosun.jobs, instead text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    IF caller IS NULL OR (j).id IS NULL OR instead IS NULL THEN
        PERFORM bosun.require_arguments('bosun.job_refuse_saga_step', ARRAY['caller', 'j', 'instead'],
                                        ARRAY[caller IS NULL, (j).id IS NULL, instead IS NULL]);
    END IF;
    SELECT * INTO s FROM bosun.job_saga(j);
    IF FOUND THEN
        RAISE EXCEPTION '%: job % is the % of step % of saga %; use bosun.%_saga(''%'') (bosun saga % --%) instead',
            caller, j.id, CASE WHEN s.direction = 'undo' THEN 'undo' ELSE 'run' END, s.step,
            s.saga_id, instead, s.saga_id, s.saga_id, instead
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
    IF job_id IS NULL THEN
        PERFORM bosun.require_arguments('bosun.job_revive', ARRAY['job_id'], ARRAY[job_id IS NULL]);
    END IF;
    UPDATE bosun.jobs
    SET state = 'available', scheduled_at = now(), finalized_at = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)
    WHERE jobs.id = job_id
    RETURNING * INTO j;
    PERFORM bosun.notify_queues(ARRAY[j.queue]);
    RETURN j;
END;
$$;

-- The name of the first rule a row breaks, as the jobs_check trigger reports it.
CREATE FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[])
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
        WHEN jsonb_path_exists(args, 'strict $.**{101}') THEN 'args_must_nest_at_most_100_levels'
        WHEN jsonb_path_exists(meta, 'strict $.**{101}') THEN 'meta_must_nest_at_most_100_levels'
        WHEN jsonb_path_exists(errors, 'strict $.**{101}') THEN 'errors_must_nest_at_most_100_levels'
    END
$function$;

-- The saga a job is a step of, if it is one: its id, step and direction.
CREATE FUNCTION bosun.job_saga(j bosun.jobs) RETURNS TABLE(saga_id uuid, step integer, direction text)
    LANGUAGE sql STABLE AS $$
    SELECT (j.args->>'saga_id')::uuid, (j.args->>'step')::integer, j.args->>'direction'
    WHERE j.kind LIKE 'saga:%' AND j.args ? 'saga_id'
      AND j.args->>'saga_id' ~ '^[0-9a-fA-F-]{36}$'
$$;

-- Least privilege: four NOLOGIN group roles, each able to do exactly its client's part, and
-- nothing in schema bosun granted to PUBLIC. A login role gets a part by membership
-- (`GRANT bosun_enqueuer TO app;`); docs/security.md says what each can and cannot do.
--
--   bosun_enqueuer  enqueue (the functions, or a plain INSERT of the columns a new job sets),
--                   start sagas, register targets, read a job's status by id
--   bosun_worker    the worker protocol and what `bosun worker` runs: its statements write
--                   the job rows of the runtime directly, so the role may write those tables;
--                   it may not call the operator functions (retry, cancel, reschedule, pause,
--                   expunge, sagas' operator calls)
--   bosun_operator  everything an operator does, reading everything
--   bosun_reader    the statistics views and the sampled counts, for dashboards
--
-- The names take a prefix from the setting `bosun.role_prefix` when the migration runs
-- (`ALTER DATABASE app SET bosun.role_prefix = 'app_'`, for several Bosun schemas in one
-- cluster). Roles are made only if missing; they belong to the cluster, so a migration down
-- leaves them. Only the owner of the schema (who migrates) may change it.
--
-- The functions an enqueuer calls, the trigger functions, the sampled counts and the job
-- status run as their owner (SECURITY DEFINER, with a pinned search_path), so that a role
-- needs no grant on the tables they read and write.
-- bosun.job_status: where job `id` stands, without its args or meta: what an application that
-- may only enqueue (bosun_enqueuer) reads of the jobs it enqueued. No row for no such job.
CREATE FUNCTION bosun.job_status(id bigint)
 RETURNS TABLE(kind text, queue text, state bosun.job_state, attempt integer,
               max_attempts integer, scheduled_at timestamp with time zone,
               finalized_at timestamp with time zone, errors jsonb)
 LANGUAGE sql STABLE
AS $function$
    SELECT bosun.require_arguments('bosun.job_status', ARRAY['id'], ARRAY[job_status.id IS NULL]);
    SELECT j.kind, j.queue, j.state, j.attempt, j.max_attempts, j.scheduled_at, j.finalized_at,
           j.errors
    FROM bosun.jobs AS j WHERE j.id = job_status.id
$function$;
ALTER FUNCTION bosun.job_status(bigint) SECURITY DEFINER;
ALTER FUNCTION bosun.job_status(bigint) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- A job's target, new or changed, must be able to take new work.
CREATE FUNCTION bosun.job_target_attach()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.target_attach(CASE TG_OP WHEN 'UPDATE' THEN 'UPDATE bosun.jobs' ELSE 'bosun.enqueue' END,
                                NEW.target);
    RETURN NEW;
END;
$function$;
ALTER FUNCTION bosun.job_target_attach() SECURITY DEFINER;
ALTER FUNCTION bosun.job_target_attach() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- A plain INSERT with a future scheduled_at is shown as `scheduled`, as bosun.enqueue does.
-- The WHEN clause keeps the function call off the common path.
CREATE FUNCTION bosun.jobs_mark_scheduled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.state := 'scheduled';
    RETURN NEW;
END;
$$;
ALTER FUNCTION bosun.jobs_mark_scheduled() SECURITY DEFINER;
ALTER FUNCTION bosun.jobs_mark_scheduled() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- The error names the check, as a constraint would, and says what is wrong in the words of
-- bosun.enqueue.
CREATE FUNCTION bosun.jobs_reject_bad_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    problem text := bosun.job_row_problem(NEW.kind, NEW.queue, NEW.args, NEW.meta, NEW.errors, NEW.tags);
    detail  text := bosun.job_input_error('', NEW.kind, NEW.args, NEW.queue, NEW.priority,
                                          NEW.max_attempts, NEW.unique_key, NEW.target,
                                          to_jsonb(NEW.tags), NEW.meta, NEW.scheduled_at);
BEGIN
    RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"%', problem,
            coalesce(': ' || detail, '')
        USING ERRCODE = 'check_violation', CONSTRAINT = problem,
              SCHEMA = 'bosun', TABLE = 'jobs';
END;
$function$;
ALTER FUNCTION bosun.jobs_reject_bad_row() SECURITY DEFINER;
ALTER FUNCTION bosun.jobs_reject_bad_row() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- The same for an update: the rule broken by a column it changed.
CREATE FUNCTION bosun.jobs_reject_bad_update()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    problem text := bosun.job_row_problem(
        CASE WHEN NEW.kind IS DISTINCT FROM OLD.kind THEN NEW.kind ELSE 'unchanged' END,
        CASE WHEN NEW.queue IS DISTINCT FROM OLD.queue THEN NEW.queue ELSE 'unchanged' END,
        CASE WHEN NEW.args IS DISTINCT FROM OLD.args THEN NEW.args ELSE '{}' END,
        CASE WHEN NEW.meta IS DISTINCT FROM OLD.meta THEN NEW.meta ELSE '{}' END,
        CASE WHEN NEW.errors IS DISTINCT FROM OLD.errors THEN NEW.errors ELSE '[]' END,
        CASE WHEN NEW.tags IS DISTINCT FROM OLD.tags THEN NEW.tags ELSE '{}' END);
BEGIN
    RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"', problem
        USING ERRCODE = 'check_violation', CONSTRAINT = problem,
              SCHEMA = 'bosun', TABLE = 'jobs';
END;
$function$;
ALTER FUNCTION bosun.jobs_reject_bad_update() SECURITY DEFINER;
ALTER FUNCTION bosun.jobs_reject_bad_update() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- At commit, once per queue: notify if a worker waits on it.
CREATE FUNCTION bosun.jobs_wake_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bosun.notify_inserts', true) = 'off' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(hashtext('bosun.waiting_workers'), hashtext(NEW.queue));
    IF EXISTS (SELECT 1 FROM bosun.waiting_workers AS w WHERE w.queue = NEW.queue) THEN
        PERFORM bosun.notify_queues(ARRAY[NEW.queue]);
    END IF;
    RETURN NULL;
END;
$$;
ALTER FUNCTION bosun.jobs_wake_waiting() SECURITY DEFINER;
ALTER FUNCTION bosun.jobs_wake_waiting() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- Whether any worker has ever registered `kind` (a saga's job kind is `saga:<kind>`).
CREATE FUNCTION bosun.kind_served(kind text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'bosun.kind_served: kind must not be null' USING ERRCODE = '22004';
    END IF;
    RETURN EXISTS (SELECT 1 FROM bosun.served_kinds AS k WHERE k.kind = kind_served.kind);
END;
$$;

-- bosun.lost_jobs: of the held jobs (`ids` and `attempts`, pairwise), those whose attempt is
-- no longer the running one: cancelled by an operator, their target expunged, or taken over.
-- Their handlers should stop; whatever they write is fenced out anyway.
CREATE FUNCTION bosun.lost_jobs(ids bigint[], attempts integer[]) RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.lost_jobs', ARRAY['ids', 'attempts'],
        ARRAY[ids IS NULL, attempts IS NULL]);
    IF cardinality(ids) <> cardinality(attempts) THEN
        RAISE EXCEPTION 'bosun.lost_jobs: ids and attempts must have the same length'
            USING ERRCODE = '22023';
    END IF;
    IF array_position(ids, NULL) IS NOT NULL OR array_position(attempts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.lost_jobs: ids and attempts must not hold nulls' USING ERRCODE = '22004';
    END IF;
    RETURN QUERY
    SELECT h.id
    FROM unnest(ids, attempts) AS h(id, attempt)
    WHERE NOT EXISTS (
        SELECT 1 FROM bosun.jobs AS j
        WHERE j.id = h.id AND j.state = 'running' AND j.attempt = h.attempt
    );
END;
$function$;

-- Wake-up: one NOTIFY per statement on channel `bosun_jobs`, whatever inserted the rows
-- (bosun.enqueue, enqueue_many, or a plain INSERT from any client). The payload is the
-- comma-separated list of queues that received a job claimable now, or '*' when the list
-- would not fit a notification. Workers treat a notification as a hint and poll as well.
CREATE FUNCTION bosun.notify_queues(queues text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    payload text := array_to_string(queues, ',');
BEGIN
    IF notify_queues.queues IS NULL THEN
        PERFORM bosun.require_arguments('bosun.notify_queues', ARRAY['queues'], ARRAY[notify_queues.queues IS NULL]);
    END IF;
    IF payload IS NULL OR payload = '' THEN
        RETURN;
    END IF;
    IF length(payload) > 7000 THEN
        payload := '*';
    END IF;
    PERFORM pg_notify('bosun_jobs', payload);
END;
$function$;

CREATE FUNCTION bosun.pause_periodic(name text) RETURNS bosun.periodic_jobs LANGUAGE sql AS $$
    SELECT bosun.periodic_set_enabled('bosun.pause_periodic', name, false)
$$;

CREATE FUNCTION bosun.pause_queue(name text) RETURNS bosun.queues LANGUAGE sql AS $$
    SELECT bosun.queue_set_paused('bosun.pause_queue', name, true)
$$;

-- For the leader: enqueue the job of `slot` unless that slot (or a later one) was enqueued or
-- skipped already, and remember `next_at`. Returns the job's id, or NULL when nothing was
-- enqueued (paused, removed, done already, or its target is expunged: then `error` says so).
-- `slot` is a whole second (the unique key names it to the second); `next_at` may be NULL
-- (no next slot).
CREATE FUNCTION bosun.periodic_fire(name text, slot timestamptz, next_at timestamptz)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p  bosun.periodic_jobs;
    id bigint;
BEGIN
    IF name IS NULL OR slot IS NULL THEN
        RAISE EXCEPTION 'bosun.periodic_fire: % must not be null',
            CASE WHEN name IS NULL THEN 'name' ELSE 'slot' END USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(slot) OR date_trunc('second', slot) <> slot THEN
        RAISE EXCEPTION 'bosun.periodic_fire: slot must be a finite time in whole seconds, got %',
            slot USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(next_at) THEN
        RAISE EXCEPTION 'bosun.periodic_fire: next_at must be a finite time or null, got %',
            next_at USING ERRCODE = '22023';
    END IF;
    SELECT * INTO p FROM bosun.periodic_jobs AS x WHERE x.name = periodic_fire.name FOR UPDATE;
    IF NOT FOUND OR NOT p.enabled THEN
        RETURN NULL;
    END IF;
    IF p.last_slot >= slot OR p.skipped_to >= slot THEN
        UPDATE bosun.periodic_jobs AS x SET next_at = periodic_fire.next_at
        WHERE x.name = p.name;
        RETURN NULL;
    END IF;
    BEGIN
        id := bosun.enqueue(p.kind, p.args, queue => p.queue, priority => p.priority,
                            max_attempts => p.max_attempts, target => p.target,
                            unique_key => format('periodic:%s:%s', p.name,
                                to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                            meta => jsonb_build_object('periodic', p.name, 'slot', slot));
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        UPDATE bosun.periodic_jobs AS x SET error = SQLERRM, next_at = periodic_fire.next_at
        WHERE x.name = p.name;
        RETURN NULL;
    END;
    UPDATE bosun.periodic_jobs AS x
    SET last_slot = slot, last_job_id = id, next_at = periodic_fire.next_at, error = NULL
    WHERE x.name = p.name;
    RETURN id;
END;
$$;

-- Locks periodic job `name` or raises P0002 naming the caller.
CREATE FUNCTION bosun.periodic_lock_for(caller text, name text)
 RETURNS bosun.periodic_jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    p bosun.periodic_jobs;
BEGIN
    IF periodic_lock_for.caller IS NULL THEN
        PERFORM bosun.require_arguments('bosun.periodic_lock_for', ARRAY['caller'], ARRAY[periodic_lock_for.caller IS NULL]);
    END IF;
    IF name IS NULL THEN
        RAISE EXCEPTION '%: name must not be null', caller USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM bosun.periodic_jobs AS x WHERE x.name = periodic_lock_for.name
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no periodic job named %', caller, bosun.quote_short(name)
            USING ERRCODE = 'P0002';
    END IF;
    RETURN p;
END;
$function$;

-- For the leader: record the next slot (NULL: there is none), or why it cannot compute one
-- (NULL: no problem).
CREATE FUNCTION bosun.periodic_note(name text, next_at timestamptz, error text)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.periodic_note: name must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(next_at) THEN
        RAISE EXCEPTION 'bosun.periodic_note: next_at must be a finite time or null, got %',
            next_at USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.periodic_jobs AS x
    SET next_at = periodic_note.next_at, error = periodic_note.error
    WHERE x.name = periodic_note.name
      AND (x.next_at IS DISTINCT FROM periodic_note.next_at
           OR x.error IS DISTINCT FROM periodic_note.error);
END;
$$;

-- bosun.pause_periodic / bosun.resume_periodic: stop or restart firing. Slots missed while
-- paused are treated by the schedule's catch-up policy, as after downtime.
CREATE FUNCTION bosun.periodic_set_enabled(caller text, name text, enabled boolean)
 RETURNS bosun.periodic_jobs
 LANGUAGE plpgsql
AS $function$
DECLARE
    p bosun.periodic_jobs;
BEGIN
    IF periodic_set_enabled.enabled IS NULL THEN
        PERFORM bosun.require_arguments('bosun.periodic_set_enabled', ARRAY['enabled'], ARRAY[true]);
    END IF;
    p := bosun.periodic_lock_for(caller, name);
    UPDATE bosun.periodic_jobs AS x SET enabled = periodic_set_enabled.enabled, updated_at = now()
    WHERE x.name = p.name RETURNING * INTO p;
    RETURN p;
END;
$function$;

-- For the leader: record that the catch-up policy skipped every slot from `first` to `last`
-- (no job is enqueued for them), unless the schedule is paused or removed, or a slot that
-- late was fired or skipped already. Returns whether it was recorded.
CREATE FUNCTION bosun.periodic_skip(name text, first timestamptz, last timestamptz)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    missing := CASE WHEN name IS NULL THEN 'name' WHEN first IS NULL THEN 'first'
                    WHEN last IS NULL THEN 'last' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.periodic_skip: % must not be null', missing
            USING ERRCODE = '22004';
    END IF;
    IF NOT (isfinite(first) AND isfinite(last)) THEN
        RAISE EXCEPTION 'bosun.periodic_skip: first and last must be finite times, got % and %',
            first, last USING ERRCODE = '22023';
    END IF;
    IF first > last THEN
        RAISE EXCEPTION 'bosun.periodic_skip: first (%) must not be after last (%)', first, last
            USING ERRCODE = '22023';
    END IF;
    UPDATE bosun.periodic_jobs AS x
    SET skipped_from = periodic_skip.first, skipped_to = periodic_skip.last
    WHERE x.name = periodic_skip.name AND x.enabled
      AND (x.last_slot IS NULL OR x.last_slot < periodic_skip.last)
      AND (x.skipped_to IS NULL OR x.skipped_to < periodic_skip.last);
    RETURN FOUND;
END;
$$;

-- bosun.protocol_version: which version of the worker protocol this schema speaks.
CREATE FUNCTION bosun.protocol_version() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1 $$;

-- bosun.pause_queue / bosun.resume_queue: persisted, so every replica sees it on its next
-- claim. Pausing a queue that has no jobs yet is allowed; both are idempotent.
CREATE FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean)
 RETURNS bosun.queues
 LANGUAGE plpgsql
AS $function$
DECLARE
    q bosun.queues;
BEGIN
    IF queue_set_paused.caller IS NULL OR queue_set_paused.pause IS NULL THEN
        PERFORM bosun.require_arguments('bosun.queue_set_paused', ARRAY['caller', 'pause'], ARRAY[queue_set_paused.caller IS NULL, queue_set_paused.pause IS NULL]);
    END IF;
    IF queue_name IS NULL THEN
        RAISE EXCEPTION '%: name must not be null', caller USING ERRCODE = '22004';
    END IF;
    IF NOT bosun.valid_queue(queue_name) THEN
        RAISE EXCEPTION '%: name % is not a valid queue name: use 1 to 64 letters, digits, ''_'', ''.'' or ''-''',
            caller, bosun.quote_short(queue_name) USING ERRCODE = '22023';
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

-- A value for an error message: quoted, and cut after 64 characters with its length said.
CREATE FUNCTION bosun.quote_short(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL THEN 'NULL'
        WHEN length(value) <= 64 THEN quote_literal(value)
        ELSE quote_literal(left(value, 64)) || format('... (%s characters)', length(value))
    END
$$;

-- bosun.reap_expunged: one batch of the reaper. Jobs on expunged targets that have not
-- finished are failed with an error entry naming the target and the reason; running ones are
-- fenced (their worker's late writes change nothing) and their handlers told on
-- `bosun_control`; saga step jobs also move their saga on (bosun.saga_reap_step). Then stuck
-- sagas on expunged targets resume compensating: their failed undo counts as done. Returns
-- the jobs reaped; a second pass finds nothing.
CREATE FUNCTION bosun.reap_expunged(batch integer DEFAULT 1000)
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
    IF batch IS NULL THEN
        RAISE EXCEPTION 'bosun.reap_expunged: batch must not be null' USING ERRCODE = '22004';
    END IF;
    IF batch < 1 THEN
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
ALTER FUNCTION bosun.reap_expunged(integer) SECURITY DEFINER;
ALTER FUNCTION bosun.reap_expunged(integer) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- bosun.register_target: make a target known (optionally with its kind) before any work names
-- it. Idempotent; a kind given later fills in or replaces the kind. An expunged target is
-- refused: expunging is final.
CREATE FUNCTION bosun.register_target(name text, kind text DEFAULT NULL) RETURNS bosun.targets
    LANGUAGE plpgsql AS $$
DECLARE
    t bosun.targets;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'bosun.register_target: name must not be null' USING ERRCODE = '22004';
    END IF;
    IF length(name) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.register_target: name must be 1 to 255 characters, got %',
            length(name) USING ERRCODE = '22023';
    END IF;
    IF kind IS NOT NULL AND length(kind) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'bosun.register_target: kind must be 1 to 100 characters, got %',
            length(kind) USING ERRCODE = '22023';
    END IF;
    PERFORM bosun.target_attach('bosun.register_target', name);
    UPDATE bosun.targets AS x SET kind = coalesce(register_target.kind, x.kind)
    WHERE x.name = register_target.name
    RETURNING * INTO t;
    RETURN t;
END;
$$;
ALTER FUNCTION bosun.register_target(text, text) SECURITY DEFINER;
ALTER FUNCTION bosun.register_target(text, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- Raise 22004 for the first of `names` whose `missing` is true.
CREATE FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    i integer := array_position(missing, true);
BEGIN
    IF i IS NOT NULL THEN
        RAISE EXCEPTION '%: % must not be null', caller, names[i] USING ERRCODE = '22004';
    END IF;
END;
$$;

-- bosun.reschedule_job: move a waiting job (scheduled, available, retryable) to run at `at`.
CREATE FUNCTION bosun.reschedule_job(id bigint, at timestamp with time zone)
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

CREATE FUNCTION bosun.resume_periodic(name text) RETURNS bosun.periodic_jobs LANGUAGE sql AS $$
    SELECT bosun.periodic_set_enabled('bosun.resume_periodic', name, true)
$$;

CREATE FUNCTION bosun.resume_queue(name text) RETURNS bosun.queues LANGUAGE sql AS $$
    SELECT bosun.queue_set_paused('bosun.resume_queue', name, false)
$$;

-- bosun.retry_job: run a job again now. Applies to scheduled, retryable, failed, cancelled
-- and completed jobs; a finished job gets one more attempt if it had used them all. A
-- running job is refused (cancel it first); an available job is returned unchanged.
CREATE FUNCTION bosun.retry_job(id bigint) RETURNS bosun.jobs
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

-- bosun.retry_jobs: retry every job in `state` (default failed), optionally only in one
-- queue and of one kind. Returns the jobs it moved.
CREATE FUNCTION bosun.retry_jobs(queue text DEFAULT NULL::text, kind text DEFAULT NULL::text, state bosun.job_state DEFAULT 'failed'::bosun.job_state)
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

-- Resume a saga that has not finished and is not moving: a stuck saga runs its failed undo
-- again; a running or compensating saga whose step has no live job (it was cancelled,
-- failed, or pruned) runs that step's job again. Jobs that are gone are enqueued afresh
-- under their deterministic keys.
CREATE FUNCTION bosun.retry_saga(id uuid) RETURNS bosun.sagas
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

-- Compensate from step `below` down: undo the highest succeeded step under it, or finish the
-- saga as compensated when there is none.
CREATE FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    next_undo integer;
BEGIN
    IF (s).id IS NULL OR saga_compensate_below.below IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_compensate_below', ARRAY['s', 'below'], ARRAY[(s).id IS NULL, saga_compensate_below.below IS NULL]);
    END IF;
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

CREATE FUNCTION bosun.saga_count_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bosun.saga_outcomes AS o (kind, outcome, shard, total)
    VALUES (NEW.kind, NEW.state::text, pg_backend_pid() % 16, 1)
    ON CONFLICT (kind, outcome, shard) DO UPDATE SET total = o.total + 1;
    RETURN NULL;
END;
$$;
ALTER FUNCTION bosun.saga_count_outcome() SECURITY DEFINER;
ALTER FUNCTION bosun.saga_count_outcome() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- Enqueue the job that runs one direction of one step. Its unique key makes this idempotent:
-- enqueueing the same step and direction again returns the job that exists.
CREATE FUNCTION bosun.saga_enqueue_step(saga_id uuid, saga_kind text, queue text, step integer, direction text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    s    bosun.sagas;
    gone text;
BEGIN
    IF saga_enqueue_step.saga_id IS NULL OR saga_enqueue_step.saga_kind IS NULL OR saga_enqueue_step.queue IS NULL OR saga_enqueue_step.step IS NULL OR saga_enqueue_step.direction IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_enqueue_step', ARRAY['saga_id', 'saga_kind', 'queue', 'step', 'direction'], ARRAY[saga_enqueue_step.saga_id IS NULL, saga_enqueue_step.saga_kind IS NULL, saga_enqueue_step.queue IS NULL, saga_enqueue_step.step IS NULL, saga_enqueue_step.direction IS NULL]);
    END IF;
    SELECT * INTO s FROM bosun.sagas AS x WHERE x.id = saga_enqueue_step.saga_id;
    gone := bosun.target_gone_reason(s.target);
    IF gone IS NULL THEN
        RETURN bosun.enqueue(
            'saga:' || saga_kind,
            jsonb_build_object('saga_id', saga_id, 'step', step, 'direction', direction),
            queue => queue,
            max_attempts => 5,
            unique_key => format('saga:%s:%s:%s', saga_id, step, direction),
            target => s.target);
    END IF;
    PERFORM bosun.saga_target_gone(s, step, direction, gone);
    RETURN NULL;
END;
$function$;

-- Finish the runner's job as `state`, fenced. `error` is appended to the job's errors.
CREATE FUNCTION bosun.saga_job_finish(job_id bigint, job_attempt integer, state bosun.job_state, error text DEFAULT NULL::text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF saga_job_finish.job_id IS NULL OR saga_job_finish.job_attempt IS NULL OR saga_job_finish.state IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_job_finish', ARRAY['job_id', 'job_attempt', 'state'], ARRAY[saga_job_finish.job_id IS NULL, saga_job_finish.job_attempt IS NULL, saga_job_finish.state IS NULL]);
    END IF;
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

-- Whether the runner still holds its job (running at its attempt); locks the job row for the
-- rest of the transaction so a rescue cannot slip in between.
CREATE FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF saga_job_held.job_id IS NULL OR saga_job_held.job_attempt IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_job_held', ARRAY['job_id', 'job_attempt'], ARRAY[saga_job_held.job_id IS NULL, saga_job_held.job_attempt IS NULL]);
    END IF;
    PERFORM 1 FROM bosun.jobs AS j
    WHERE j.id = job_id AND j.state = 'running' AND j.attempt = job_attempt
    FOR UPDATE;
    RETURN FOUND;
END;
$function$;

-- Whether the runner still holds its job (running at its attempt), as bosun.saga_job_held,
-- and the job's limit of attempts becomes the step's: never below the attempt it is on, so
-- a revived job keeps the attempt it was given. Step jobs are enqueued with the steps'
-- default limit (5, as Step::max_attempts), so only a step with a limit of its own writes.
CREATE FUNCTION bosun.saga_job_hold_taking_limit(job_id bigint, job_attempt integer, step_max_attempts integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    j      bosun.jobs;
    wanted integer;
BEGIN
    IF saga_job_hold_taking_limit.job_id IS NULL OR saga_job_hold_taking_limit.job_attempt IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_job_hold_taking_limit',
            ARRAY['job_id', 'job_attempt'],
            ARRAY[saga_job_hold_taking_limit.job_id IS NULL, saga_job_hold_taking_limit.job_attempt IS NULL]);
    END IF;
    SELECT * INTO j FROM bosun.jobs AS x
    WHERE x.id = job_id AND x.state = 'running' AND x.attempt = job_attempt
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    wanted := greatest(j.attempt, least(step_max_attempts, 1000000000));
    IF wanted IS DISTINCT FROM j.max_attempts AND wanted IS NOT NULL THEN
        UPDATE bosun.jobs AS x SET max_attempts = wanted WHERE x.id = j.id;
    END IF;
    RETURN true;
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

-- Whatever sets a saga's error also adds it to the history, with the step and state it was in.
CREATE FUNCTION bosun.saga_keep_error() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.errors := NEW.errors || jsonb_build_array(jsonb_build_object(
        'at', now(), 'step', NEW.current_step, 'state', NEW.state, 'error', NEW.error));
    RETURN NEW;
END;
$$;
ALTER FUNCTION bosun.saga_keep_error() SECURITY DEFINER;
ALTER FUNCTION bosun.saga_keep_error() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- Locks and returns one saga, or raises P0002 naming the function.
CREATE FUNCTION bosun.saga_lock_for(caller text, saga_id uuid)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_lock_for.caller IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_lock_for', ARRAY['caller'], ARRAY[saga_lock_for.caller IS NULL]);
    END IF;
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

-- The reaper's saga half: the step job `j` was failed because its target is gone. A step
-- that was to run fails and the saga compensates; an undo counts as done. Only while the
-- saga is in the phase the job belongs to (a forward step while running, an undo while
-- compensating): otherwise the saga has moved on and the job was already moot.
CREATE FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    s         bosun.sagas;
    step      integer := (j.args->>'step')::integer;
    direction text := j.args->>'direction';
BEGIN
    IF (j).id IS NULL OR saga_reap_step.reason IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_reap_step', ARRAY['j', 'reason'], ARRAY[(j).id IS NULL, saga_reap_step.reason IS NULL]);
    END IF;
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

-- A step's job is starting: make sure the ledger lists every step (names and whether each has
-- an undo, from the runner's definition), count the attempt, and return the saga. NULL when
-- the saga no longer runs forward (cancelled, compensating), or when the runner no longer
-- holds its job (then it must not touch the ledger): the caller then calls
-- bosun.saga_step_skip, which is fenced in turn.
CREATE FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[], step_max_attempts integer DEFAULT NULL)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF job_id IS NULL OR job_attempt IS NULL OR saga_id IS NULL OR step IS NULL OR step_names IS NULL OR step_has_undo IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_step_begin',
            ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'step_names', 'step_has_undo'],
            ARRAY[job_id IS NULL, job_attempt IS NULL, saga_id IS NULL, step IS NULL,
                  step_names IS NULL, step_has_undo IS NULL]);
    END IF;
    IF NOT bosun.saga_job_hold_taking_limit(job_id, job_attempt, step_max_attempts) THEN
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

-- A step succeeded with `output`: record it and enqueue the next step, or finish the saga.
-- If a cancel arrived meanwhile, compensate instead, starting with this step.
CREATE FUNCTION bosun.saga_step_done(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer, output jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_step_done.job_id IS NULL OR saga_step_done.job_attempt IS NULL OR saga_step_done.saga_id IS NULL OR saga_step_done.step IS NULL OR saga_step_done.step_count IS NULL OR saga_step_done.output IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_step_done', ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'step_count', 'output'], ARRAY[saga_step_done.job_id IS NULL, saga_step_done.job_attempt IS NULL, saga_step_done.saga_id IS NULL, saga_step_done.step IS NULL, saga_step_done.step_count IS NULL, saga_step_done.output IS NULL]);
    END IF;
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

-- A step failed for good (permanent error, attempts used up): fail its job, mark it failed,
-- and compensate the steps before it.
CREATE FUNCTION bosun.saga_step_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_step_fail.job_id IS NULL OR saga_step_fail.job_attempt IS NULL OR saga_step_fail.saga_id IS NULL OR saga_step_fail.step IS NULL OR saga_step_fail.error IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_step_fail', ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'error'], ARRAY[saga_step_fail.job_id IS NULL, saga_step_fail.job_attempt IS NULL, saga_step_fail.saga_id IS NULL, saga_step_fail.step IS NULL, saga_step_fail.error IS NULL]);
    END IF;
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

-- A retryable error of a step or an undo: recorded on the ledger while the job retries. Best
-- effort and unfenced, so it only touches a step that is still running or undoing: a stale
-- runner cannot stamp an error on a step that has moved on.
CREATE FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text)
 RETURNS void
 LANGUAGE sql
AS $function$
    SELECT bosun.require_arguments('bosun.saga_step_note_error', ARRAY['saga_id', 'step', 'error'], ARRAY[saga_step_note_error.saga_id IS NULL, saga_step_note_error.step IS NULL, saga_step_note_error.error IS NULL]);
    UPDATE bosun.saga_steps SET error = saga_step_note_error.error
    WHERE saga_steps.saga_id = saga_step_note_error.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$function$;

-- Best-effort progress of a running step (percent and a message); only while it runs.
CREATE FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text)
 RETURNS void
 LANGUAGE sql
AS $function$
    SELECT bosun.require_arguments('bosun.saga_step_progress', ARRAY['saga_id', 'step', 'pct'], ARRAY[saga_step_progress.saga_id IS NULL, saga_step_progress.step IS NULL, saga_step_progress.pct IS NULL]);
    UPDATE bosun.saga_steps
    SET progress_pct = least(greatest(pct, 0), 100), progress_message = message
    WHERE saga_steps.saga_id = saga_step_progress.saga_id AND idx = step
      AND state IN ('running', 'undoing')
$function$;

-- A step's job found the saga cancelled (or already compensating) before running: complete
-- the job without running the step, and compensate what succeeded before it.
CREATE FUNCTION bosun.saga_step_skip(job_id bigint, job_attempt integer, saga_id uuid, step integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_step_skip.job_id IS NULL OR saga_step_skip.job_attempt IS NULL OR saga_step_skip.saga_id IS NULL OR saga_step_skip.step IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_step_skip', ARRAY['job_id', 'job_attempt', 'saga_id', 'step'], ARRAY[saga_step_skip.job_id IS NULL, saga_step_skip.job_attempt IS NULL, saga_step_skip.saga_id IS NULL, saga_step_skip.step IS NULL]);
    END IF;
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

-- Step `step` of saga `s` cannot run in `direction` because its target is gone (`reason`):
-- a step to do fails and the saga compensates; an undo is recorded as undone, with the
-- reason, and compensation goes on with the next step down.
CREATE FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF (s).id IS NULL OR saga_target_gone.step IS NULL OR saga_target_gone.direction IS NULL OR saga_target_gone.reason IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_target_gone', ARRAY['s', 'step', 'direction', 'reason'], ARRAY[(s).id IS NULL, saga_target_gone.step IS NULL, saga_target_gone.direction IS NULL, saga_target_gone.reason IS NULL]);
    END IF;
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

-- An undo is starting: count the attempt. NULL when the runner no longer holds its job.
CREATE FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_max_attempts integer DEFAULT NULL)
 RETURNS bosun.sagas
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF job_id IS NULL OR job_attempt IS NULL OR saga_id IS NULL OR step IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_undo_begin',
            ARRAY['job_id', 'job_attempt', 'saga_id', 'step'],
            ARRAY[job_id IS NULL, job_attempt IS NULL, saga_id IS NULL, step IS NULL]);
    END IF;
    IF NOT bosun.saga_job_hold_taking_limit(job_id, job_attempt, step_max_attempts) THEN
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

-- An undo succeeded: the step is undone; compensate the next one down.
CREATE FUNCTION bosun.saga_undo_done(job_id bigint, job_attempt integer, saga_id uuid, step integer)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_undo_done.job_id IS NULL OR saga_undo_done.job_attempt IS NULL OR saga_undo_done.saga_id IS NULL OR saga_undo_done.step IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_undo_done', ARRAY['job_id', 'job_attempt', 'saga_id', 'step'], ARRAY[saga_undo_done.job_id IS NULL, saga_undo_done.job_attempt IS NULL, saga_undo_done.saga_id IS NULL, saga_undo_done.step IS NULL]);
    END IF;
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

-- An undo gave up: the saga is stuck until an operator runs bosun.retry_saga.
CREATE FUNCTION bosun.saga_undo_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF saga_undo_fail.job_id IS NULL OR saga_undo_fail.job_attempt IS NULL OR saga_undo_fail.saga_id IS NULL OR saga_undo_fail.step IS NULL OR saga_undo_fail.error IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_undo_fail', ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'error'], ARRAY[saga_undo_fail.job_id IS NULL, saga_undo_fail.job_attempt IS NULL, saga_undo_fail.saga_id IS NULL, saga_undo_fail.step IS NULL, saga_undo_fail.error IS NULL]);
    END IF;
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

-- An undo's handler found its target gone by itself (e.g. a 404 from a service that lost its
-- state): finish its job, fenced, and count the step as undone with the reason.
CREATE FUNCTION bosun.saga_undo_gone(job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    s bosun.sagas;
BEGIN
    IF saga_undo_gone.job_id IS NULL OR saga_undo_gone.job_attempt IS NULL OR saga_undo_gone.saga_id IS NULL OR saga_undo_gone.step IS NULL OR saga_undo_gone.reason IS NULL THEN
        PERFORM bosun.require_arguments('bosun.saga_undo_gone', ARRAY['job_id', 'job_attempt', 'saga_id', 'step', 'reason'], ARRAY[saga_undo_gone.job_id IS NULL, saga_undo_gone.job_attempt IS NULL, saga_undo_gone.saga_id IS NULL, saga_undo_gone.step IS NULL, saga_undo_gone.reason IS NULL]);
    END IF;
    IF NOT bosun.saga_job_finish(job_id, job_attempt, 'completed') THEN
        RETURN false;
    END IF;
    SELECT * INTO s FROM bosun.sagas AS x WHERE x.id = saga_undo_gone.saga_id FOR UPDATE;
    PERFORM bosun.saga_target_gone(s, step, 'undo', 'target gone: ' || reason);
    RETURN true;
END;
$function$;

-- Per queue: how long the oldest job that could run now has waited (seconds).
CREATE FUNCTION bosun.sample_oldest_available()
    RETURNS TABLE (queue text, waited_secs float8) LANGUAGE sql STABLE AS $$
    SELECT j.queue, extract(epoch FROM now() - min(j.scheduled_at))::float8
    FROM bosun.jobs AS j
    WHERE j.state IN ('available', 'scheduled', 'retryable') AND j.scheduled_at <= now()
    GROUP BY j.queue
$$;
ALTER FUNCTION bosun.sample_oldest_available() SECURITY DEFINER;
ALTER FUNCTION bosun.sample_oldest_available() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- The backlog, counted through the partial indexes that hold it: claimable states and
-- running ones are two index scans (one IN list over both would match neither index).
CREATE FUNCTION bosun.sample_queues(exact_below bigint DEFAULT 100000)
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
    IF sample_queues.exact_below IS NULL THEN
        PERFORM bosun.require_arguments('bosun.sample_queues', ARRAY['exact_below'], ARRAY[sample_queues.exact_below IS NULL]);
    END IF;
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
ALTER FUNCTION bosun.sample_queues(bigint) SECURITY DEFINER;
ALTER FUNCTION bosun.sample_queues(bigint) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- bosun.schedule_periodic: define or redefine periodic job `name`. Idempotent. Redefining keeps
-- `enabled` (an operator's pause outlives a deploy), `last_slot` and `skipped_to` (past slots
-- do not fire again). The cron expression has 5 fields (minute hour day-of-month month
-- day-of-week) or 6 (seconds first); the leader parses it and records an error on the row if
-- it cannot. `timezone` must be a zone PostgreSQL knows (pg_timezone_names); the leader
-- records an error if its own zone database lacks it.
CREATE FUNCTION bosun.schedule_periodic(
    name text, cron text, kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
    priority integer DEFAULT 0, max_attempts integer DEFAULT 20, target text DEFAULT NULL,
    catch_up text DEFAULT 'latest', catch_up_max integer DEFAULT 100,
    timezone text DEFAULT 'UTC'
) RETURNS bosun.periodic_jobs LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    missing text;
    fields  integer;
    p       bosun.periodic_jobs;
BEGIN
    missing := CASE WHEN name IS NULL THEN 'name' WHEN cron IS NULL THEN 'cron'
                    WHEN kind IS NULL THEN 'kind' WHEN args IS NULL THEN 'args'
                    WHEN queue IS NULL THEN 'queue' WHEN priority IS NULL THEN 'priority'
                    WHEN max_attempts IS NULL THEN 'max_attempts'
                    WHEN catch_up IS NULL THEN 'catch_up'
                    WHEN catch_up_max IS NULL THEN 'catch_up_max'
                    WHEN timezone IS NULL THEN 'timezone' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: % must not be null', missing
            USING ERRCODE = '22004';
    END IF;
    IF length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: name must be 1 to 200 characters, got %',
            length(name) USING ERRCODE = '22023';
    END IF;
    fields := cardinality(regexp_split_to_array(btrim(cron), '\s+'));
    IF NOT (btrim(cron) LIKE '@%' OR fields IN (5, 6)) OR length(cron) > 200 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: cron % must have 5 fields (minute hour day month weekday), 6 (seconds first), or be an @alias such as @hourly',
            quote_literal(cron) USING ERRCODE = '22023';
    END IF;
    IF NOT bosun.valid_kind(kind) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: kind % is invalid: use 1 to 128 letters, digits, ''_'', ''.'', '':'' or ''-''',
            quote_literal(kind) USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: args must be a JSON object, got %',
            jsonb_typeof(args) USING ERRCODE = '22023';
    END IF;
    IF NOT bosun.valid_queue(queue) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: queue % is invalid: use 1 to 64 letters, digits, ''_'', ''.'' or ''-''',
            quote_literal(queue) USING ERRCODE = '22023';
    END IF;
    IF priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: priority must fit a smallint, got %', priority
            USING ERRCODE = '22023';
    END IF;
    IF max_attempts < 1 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: max_attempts must be at least 1, got %',
            max_attempts USING ERRCODE = '22023';
    END IF;
    IF target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: target must be 1 to 255 characters, got %',
            length(target) USING ERRCODE = '22023';
    END IF;
    -- Bad values are echoed cut to 64 characters: enough to recognise, never a huge message.
    IF catch_up NOT IN ('latest', 'all', 'none') THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: catch_up must be ''latest'', ''all'' or ''none'', got %',
            quote_literal(left(catch_up, 64)) USING ERRCODE = '22023';
    END IF;
    IF catch_up_max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: catch_up_max must be 1 to 10000, got %',
            catch_up_max USING ERRCODE = '22023';
    END IF;
    -- 'localtime' and 'posixrules' are files of the server's zone directory, not zones: what
    -- they mean depends on the machine.
    IF length(timezone) NOT BETWEEN 1 AND 64
       OR timezone IN ('localtime', 'posixrules')
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names AS z WHERE z.name = timezone) THEN
        RAISE EXCEPTION 'bosun.schedule_periodic: timezone % is not an IANA time zone name such as ''Europe/Berlin'' or ''UTC'' (see pg_timezone_names)',
            quote_literal(left(timezone, 64)) USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.periodic_jobs AS x
        (name, cron, kind, args, queue, priority, max_attempts, target, catch_up,
         catch_up_max, timezone)
    VALUES (name, btrim(cron), kind, args, queue, priority, max_attempts, target, catch_up,
            catch_up_max, timezone)
    ON CONFLICT ON CONSTRAINT periodic_jobs_pkey DO UPDATE
    SET cron = excluded.cron, kind = excluded.kind, args = excluded.args,
        queue = excluded.queue, priority = excluded.priority,
        max_attempts = excluded.max_attempts, target = excluded.target,
        catch_up = excluded.catch_up, catch_up_max = excluded.catch_up_max,
        timezone = excluded.timezone,
        next_at = CASE WHEN (x.cron, x.timezone) = (excluded.cron, excluded.timezone)
                       THEN x.next_at END,
        error = CASE WHEN (x.cron, x.timezone) = (excluded.cron, excluded.timezone)
                     THEN x.error END,
        updated_at = now()
    RETURNING * INTO p;
    RETURN p;
END;
$$;

-- bosun.snooze_job: not now; run again after `delay` (0 to 36525 days) without using an
-- attempt. Returns the new state (`scheduled`, or `failed` for a job at the most attempts a
-- job may have) and the seconds until it is due; no row if the attempt is no longer the
-- running one.
CREATE FUNCTION bosun.snooze_job(job_id bigint, job_attempt integer, delay interval)
 RETURNS TABLE(state bosun.job_state, due_in double precision)
 LANGUAGE plpgsql
 SET plan_cache_mode TO force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM bosun.require_arguments('bosun.snooze_job', ARRAY['job_id', 'job_attempt', 'delay'],
        ARRAY[job_id IS NULL, job_attempt IS NULL, delay IS NULL]);
    IF delay < interval '0' OR delay > interval '36525 days' THEN
        RAISE EXCEPTION 'bosun.snooze_job: delay must be 0 to 36525 days, got %', delay
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE bosun.jobs AS j
    SET state = CASE WHEN j.attempt < 1000000000 THEN 'scheduled' ELSE 'failed' END::bosun.job_state,
        scheduled_at = CASE WHEN j.attempt < 1000000000 THEN now() + snooze_job.delay
                            ELSE j.scheduled_at END,
        max_attempts = least(j.max_attempts + 1, 1000000000),
        finalized_at = CASE WHEN j.attempt < 1000000000 THEN NULL ELSE now() END,
        errors = CASE WHEN j.attempt < 1000000000 THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(),
                          'error', 'snoozed, but the job has used the most attempts a job may have (1000000000)',
                          'worker', j.attempted_by, 'kind', 'snooze'))
                 END
    WHERE j.id = snooze_job.job_id AND j.state = 'running' AND j.attempt = snooze_job.job_attempt
    RETURNING j.state,
              CASE WHEN j.state = 'scheduled'
                   THEN extract(epoch FROM j.scheduled_at - now())::float8 END;
END;
$function$;

-- bosun.start_saga: start saga `kind` under the idempotency key `key`. The same kind, key and
-- inputs again return the existing saga; the same key with another kind or other inputs is
-- an error (a key names one saga).
CREATE FUNCTION bosun.start_saga(kind text, key text, inputs jsonb DEFAULT '{}'::jsonb, target text DEFAULT NULL::text)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    missing  text;
    existing bosun.sagas;
    new_id   uuid;
BEGIN
    missing := CASE WHEN kind IS NULL THEN 'kind' WHEN key IS NULL THEN 'key'
                    WHEN inputs IS NULL THEN 'inputs' END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.start_saga: % must not be null', missing USING ERRCODE = '22004';
    END IF;
    IF NOT bosun.valid_saga_kind(kind) THEN
        RAISE EXCEPTION 'bosun.start_saga: kind % is invalid: use 1 to 122 letters, digits, ''_'', ''.'', '':'' or ''-'', starting with a letter, digit or ''_''',
            bosun.quote_short(kind) USING ERRCODE = '22023';
    END IF;
    IF length(key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'bosun.start_saga: key must be 1 to 200 characters, got %', length(key)
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(inputs) <> 'object' THEN
        RAISE EXCEPTION 'bosun.start_saga: inputs must be a JSON object, got %', jsonb_typeof(inputs)
            USING ERRCODE = '22023';
    END IF;
    IF target IS NOT NULL AND length(target) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'bosun.start_saga: target must be 1 to 255 characters, got %',
            length(target) USING ERRCODE = '22023';
    END IF;

    SELECT * INTO existing FROM bosun.sagas AS s WHERE s.key = start_saga.key;
    IF NOT FOUND THEN
        IF target IS NOT NULL THEN
            PERFORM bosun.target_attach('bosun.start_saga', target);
        END IF;
        INSERT INTO bosun.sagas AS s (kind, key, inputs, target)
        VALUES (start_saga.kind, start_saga.key, start_saga.inputs, start_saga.target)
        ON CONFLICT ON CONSTRAINT saga_key_is_unique DO NOTHING
        RETURNING s.id INTO new_id;
        IF new_id IS NOT NULL THEN
            PERFORM bosun.saga_enqueue_step(new_id, start_saga.kind, 'default', 0, 'do');
            RETURN new_id;
        END IF;
        SELECT * INTO existing FROM bosun.sagas AS s WHERE s.key = start_saga.key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'bosun.start_saga: the saga with key % was removed while starting; retry',
                quote_literal(key) USING ERRCODE = '40001';
        END IF;
    END IF;
    IF existing.kind <> start_saga.kind OR existing.inputs <> start_saga.inputs
       OR existing.target IS DISTINCT FROM start_saga.target THEN
        RAISE EXCEPTION 'bosun.start_saga: key % already names saga % (%), with %; start it with the same kind, inputs and target, or use another key',
            bosun.quote_short(key), existing.id, existing.state,
            concat_ws(', ',
                CASE WHEN existing.kind <> start_saga.kind
                     THEN format('other kind: %s (given %s)', bosun.quote_short(existing.kind),
                                 bosun.quote_short(start_saga.kind)) END,
                CASE WHEN existing.inputs <> start_saga.inputs
                     THEN format('other inputs: %s (given %s)', bosun.quote_short(existing.inputs::text),
                                 bosun.quote_short(start_saga.inputs::text)) END,
                CASE WHEN existing.target IS DISTINCT FROM start_saga.target
                     THEN format('other target: %s (given %s)', bosun.quote_short(existing.target),
                                 bosun.quote_short(start_saga.target)) END)
            USING ERRCODE = '23505';
    END IF;
    RETURN existing.id;
END;
$function$;
ALTER FUNCTION bosun.start_saga(text, text, jsonb, text) SECURITY DEFINER;
ALTER FUNCTION bosun.start_saga(text, text, jsonb, text) SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- Register `target` as in service unless known, and refuse it if expunged. The row is locked
-- FOR SHARE until the caller commits, so an expunge waits for work being attached right now
-- and the reaper then sees that work.
CREATE FUNCTION bosun.target_attach(caller text, target text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    t bosun.targets;
BEGIN
    IF target_attach.caller IS NULL OR target_attach.target IS NULL THEN
        PERFORM bosun.require_arguments('bosun.target_attach', ARRAY['caller', 'target'], ARRAY[target_attach.caller IS NULL, target_attach.target IS NULL]);
    END IF;
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

-- Why work on `target` can no longer run, or NULL while it is in service (or none is named).
CREATE FUNCTION bosun.target_gone_reason(target text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('target %s expunged: %s', t.name, coalesce(t.reason, 'no reason given'))
    FROM bosun.targets AS t
    WHERE t.name = target_gone_reason.target AND t.state = 'expunged'
$$;

-- bosun.unschedule_periodic: remove it (jobs it enqueued stay).
CREATE FUNCTION bosun.unschedule_periodic(name text) RETURNS bosun.periodic_jobs
    LANGUAGE plpgsql AS $$
DECLARE
    p bosun.periodic_jobs := bosun.periodic_lock_for('bosun.unschedule_periodic', name);
BEGIN
    DELETE FROM bosun.periodic_jobs AS x WHERE x.name = p.name;
    RETURN p;
END;
$$;

-- bosun.worker_deregister: forget `worker` at a graceful shutdown: its registration, any
-- leadership it holds, and its marks as waiting on queues. Give its jobs back first
-- (bosun.give_back_jobs); jobs it still holds are rescued as a dead worker's.
CREATE FUNCTION bosun.worker_deregister(worker text) RETURNS void
    LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM bosun.require_arguments('bosun.worker_deregister', ARRAY['worker'],
        ARRAY[worker IS NULL]);
    DELETE FROM bosun.leaders WHERE worker_id = worker;
    DELETE FROM bosun.workers WHERE id = worker;
    DELETE FROM bosun.waiting_workers AS w WHERE w.worker = worker_deregister.worker;
END;
$function$;

-- bosun.worker_heartbeat: register `worker` (1 to 255 characters) as serving `queues` with
-- `kinds`, alive for `lease_seconds` from now on the database clock, or renew it. True when
-- the worker was not registered (its first beat, or one after its registration expired and
-- was forgotten). A worker whose lease runs out is dead: the maintenance leader gives its
-- running jobs back.
CREATE FUNCTION bosun.worker_heartbeat(worker text, queues text[], kinds text[],
                                       lease_seconds double precision DEFAULT 15,
                                       host text DEFAULT '', pid integer DEFAULT 0)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    inserted boolean;
BEGIN
    PERFORM bosun.require_arguments('bosun.worker_heartbeat',
        ARRAY['worker', 'queues', 'kinds', 'lease_seconds', 'host', 'pid'],
        ARRAY[worker IS NULL, queues IS NULL, kinds IS NULL, lease_seconds IS NULL,
              host IS NULL, pid IS NULL]);
    IF NOT (lease_seconds > 0 AND lease_seconds <= 3155760000) THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: lease_seconds must be above 0 and at most 3155760000 (36525 days), got %',
            lease_seconds USING ERRCODE = '22023';
    END IF;
    IF array_position(queues, NULL) IS NOT NULL OR array_position(kinds, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: queues and kinds must not hold nulls'
            USING ERRCODE = '22004';
    END IF;
    IF cardinality(queues) > 1000 OR cardinality(kinds) > 10000 THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: at most 1000 queues and 10000 kinds, got % and %',
            cardinality(queues), cardinality(kinds) USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(queues) AS q WHERE NOT bosun.valid_queue(q))
       OR EXISTS (SELECT 1 FROM unnest(kinds) AS k WHERE NOT bosun.valid_kind(k)) THEN
        RAISE EXCEPTION 'bosun.worker_heartbeat: queues and kinds must be valid names (see bosun.valid_queue, bosun.valid_kind)'
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO bosun.workers AS w (id, host, pid, queues, kinds, started_at, heartbeat_at, expires_at)
    VALUES (worker, host, pid, queues, kinds, now(), now(),
            now() + make_interval(secs => lease_seconds))
    ON CONFLICT (id) DO UPDATE
    SET heartbeat_at = now(),
        expires_at = EXCLUDED.expires_at,
        queues = EXCLUDED.queues,
        kinds = EXCLUDED.kinds
    RETURNING (w.xmax = 0) INTO inserted;
    RETURN inserted;
END;
$function$;

-- A worker about to sleep on a queue: from now on, inserts into it notify. It waits for the
-- inserts that are committing (they checked before the mark); not for long, since a
-- transaction that fired its checks early (SET CONSTRAINTS ALL IMMEDIATE) holds the lock to
-- its end, and inserts queue up behind a waiting mark: past the timeout the worker is not
-- marked and polls.
CREATE FUNCTION bosun.worker_waits(queue_name text, worker text)
 RETURNS void
 LANGUAGE plpgsql
 SET lock_timeout TO '200ms'
AS $function$
BEGIN
    IF worker_waits.queue_name IS NULL OR worker_waits.worker IS NULL THEN
        PERFORM bosun.require_arguments('bosun.worker_waits', ARRAY['queue_name', 'worker'], ARRAY[worker_waits.queue_name IS NULL, worker_waits.worker IS NULL]);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('bosun.waiting_workers'), hashtext(queue_name));
    INSERT INTO bosun.waiting_workers AS w (queue, worker)
    VALUES (queue_name, worker_waits.worker)
    ON CONFLICT ON CONSTRAINT waiting_workers_pkey DO UPDATE SET since = now();
END;
$function$;

CREATE FUNCTION bosun.workers_record_kinds() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    -- In the kinds' order, so that workers registering at once lock the rows they share in
    -- the same order and wait for each other instead of deadlocking.
    INSERT INTO bosun.served_kinds AS k (kind, last_worker)
    SELECT DISTINCT u.kind, NEW.id FROM unnest(NEW.kinds) AS u(kind) WHERE u.kind IS NOT NULL
    ORDER BY u.kind
    ON CONFLICT (kind) DO UPDATE SET last_seen = now(), last_worker = EXCLUDED.last_worker;
    RETURN NULL;
END;
$$;
ALTER FUNCTION bosun.workers_record_kinds() SECURITY DEFINER;
ALTER FUNCTION bosun.workers_record_kinds() SET search_path TO 'pg_catalog', 'bosun', 'pg_temp';

-- ========================================================================================
-- Views
-- ========================================================================================

CREATE VIEW bosun.queue_stats AS
 WITH counts AS (
         SELECT jobs.queue,
            count(*) FILTER (WHERE (jobs.state = 'scheduled'::bosun.job_state)) AS scheduled,
            count(*) FILTER (WHERE (jobs.state = 'available'::bosun.job_state)) AS available,
            count(*) FILTER (WHERE (jobs.state = 'running'::bosun.job_state)) AS running,
            count(*) FILTER (WHERE (jobs.state = 'retryable'::bosun.job_state)) AS retryable,
            count(*) FILTER (WHERE (jobs.state = 'completed'::bosun.job_state)) AS completed,
            count(*) FILTER (WHERE (jobs.state = 'failed'::bosun.job_state)) AS failed,
            count(*) FILTER (WHERE (jobs.state = 'cancelled'::bosun.job_state)) AS cancelled,
            min(jobs.scheduled_at) FILTER (WHERE ((jobs.state = ANY (ARRAY['available'::bosun.job_state, 'scheduled'::bosun.job_state, 'retryable'::bosun.job_state])) AND (jobs.scheduled_at <= now()))) AS oldest_due_at
           FROM bosun.jobs
          GROUP BY jobs.queue
        )
 SELECT COALESCE(c.queue, q.name) AS queue,
    COALESCE(q.paused, false) AS paused,
    COALESCE(c.scheduled, (0)::bigint) AS scheduled,
    COALESCE(c.available, (0)::bigint) AS available,
    COALESCE(c.running, (0)::bigint) AS running,
    COALESCE(c.retryable, (0)::bigint) AS retryable,
    COALESCE(c.completed, (0)::bigint) AS completed,
    COALESCE(c.failed, (0)::bigint) AS failed,
    COALESCE(c.cancelled, (0)::bigint) AS cancelled,
    (now() - c.oldest_due_at) AS oldest_available_age
   FROM (counts c
     FULL JOIN bosun.queues q ON ((q.name = c.queue)));

CREATE VIEW bosun.target_stats AS
 SELECT t.name,
    t.kind,
    t.state,
    t.registered_at,
    t.expunged_at,
    t.reason,
    ( SELECT count(*) AS count
           FROM bosun.jobs j
          WHERE ((j.target = t.name) AND (j.state = ANY (ARRAY['scheduled'::bosun.job_state, 'available'::bosun.job_state, 'running'::bosun.job_state, 'retryable'::bosun.job_state])))) AS live_jobs,
    t.reaped_jobs,
    ( SELECT count(*) AS count
           FROM bosun.sagas s
          WHERE ((s.target = t.name) AND (s.state = ANY (ARRAY['running'::bosun.saga_state, 'compensating'::bosun.saga_state, 'stuck'::bosun.saga_state])))) AS live_sagas
   FROM bosun.targets t;

-- ========================================================================================
-- Indexes
-- ========================================================================================

CREATE INDEX jobs_claimable_idx ON bosun.jobs USING btree (queue, priority, scheduled_at, id) WHERE (state = ANY (ARRAY['available'::bosun.job_state, 'scheduled'::bosun.job_state, 'retryable'::bosun.job_state]));

CREATE INDEX jobs_finalized_idx ON bosun.jobs USING btree (state, finalized_at) WHERE (state = ANY (ARRAY['completed'::bosun.job_state, 'failed'::bosun.job_state, 'cancelled'::bosun.job_state]));

CREATE INDEX jobs_running_idx ON bosun.jobs USING btree (id) WHERE (state = 'running'::bosun.job_state);

CREATE INDEX jobs_running_since_idx ON bosun.jobs USING btree (attempted_at) WHERE ((state = 'running'::bosun.job_state) AND (attempted_at IS NOT NULL));

CREATE INDEX jobs_target_live_idx ON bosun.jobs USING btree (target, id) WHERE ((target IS NOT NULL) AND (state = ANY (ARRAY['scheduled'::bosun.job_state, 'available'::bosun.job_state, 'running'::bosun.job_state, 'retryable'::bosun.job_state])));

CREATE UNIQUE INDEX jobs_unique_key_idx ON bosun.jobs USING btree (unique_key) WHERE (unique_key IS NOT NULL);

CREATE INDEX sagas_finished_idx ON bosun.sagas USING btree (finished_at) WHERE (state = ANY (ARRAY['succeeded'::bosun.saga_state, 'compensated'::bosun.saga_state]));

CREATE INDEX sagas_state_kind_idx ON bosun.sagas USING btree (state, kind);

-- ========================================================================================
-- Triggers
-- ========================================================================================

CREATE TRIGGER jobs_check BEFORE INSERT ON bosun.jobs FOR EACH ROW WHEN (((new.kind !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'::text) OR (length(new.kind) > 128) OR (new.queue !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'::text) OR (length(new.queue) > 64) OR (jsonb_typeof(new.args) <> 'object'::text) OR (jsonb_typeof(new.meta) <> 'object'::text) OR (jsonb_typeof(new.errors) <> 'array'::text) OR ((cardinality(new.tags) > 0) AND bosun.bad_tags(new.tags)) OR jsonb_path_exists(new.args, 'strict $.**{101}'::jsonpath) OR jsonb_path_exists(new.meta, 'strict $.**{101}'::jsonpath) OR jsonb_path_exists(new.errors, 'strict $.**{101}'::jsonpath))) EXECUTE FUNCTION bosun.jobs_reject_bad_row();

CREATE TRIGGER jobs_check_update BEFORE UPDATE OF kind, queue, args, meta, errors, tags ON bosun.jobs FOR EACH ROW WHEN ((((new.kind IS DISTINCT FROM old.kind) AND ((new.kind !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'::text) OR (length(new.kind) > 128))) OR ((new.queue IS DISTINCT FROM old.queue) AND ((new.queue !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'::text) OR (length(new.queue) > 64))) OR ((new.args IS DISTINCT FROM old.args) AND ((jsonb_typeof(new.args) <> 'object'::text) OR jsonb_path_exists(new.args, 'strict $.**{101}'::jsonpath))) OR ((new.meta IS DISTINCT FROM old.meta) AND ((jsonb_typeof(new.meta) <> 'object'::text) OR jsonb_path_exists(new.meta, 'strict $.**{101}'::jsonpath))) OR ((new.errors IS DISTINCT FROM old.errors) AND ((jsonb_typeof(new.errors) <> 'array'::text) OR jsonb_path_exists(new.errors, 'strict $.**{101}'::jsonpath))) OR ((new.tags IS DISTINCT FROM old.tags) AND (cardinality(new.tags) > 0) AND bosun.bad_tags(new.tags)))) EXECUTE FUNCTION bosun.jobs_reject_bad_update();

CREATE CONSTRAINT TRIGGER jobs_claim_floor AFTER INSERT OR UPDATE OF state, queue, priority, scheduled_at ON bosun.jobs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.state = ANY (ARRAY['available'::bosun.job_state, 'scheduled'::bosun.job_state, 'retryable'::bosun.job_state])) AND (new.scheduled_at >= now()) AND (strpos(COALESCE(current_setting('bosun.claim_floor_lanes'::text, true), ''::text), ((((','::text || new.queue) || '/'::text) || new.priority) || ','::text)) = 0) AND (set_config('bosun.claim_floor_lanes'::text, ((((COALESCE(NULLIF(current_setting('bosun.claim_floor_lanes'::text, true), ''::text), ','::text) || new.queue) || '/'::text) || new.priority) || ','::text), true) IS NOT NULL))) EXECUTE FUNCTION bosun.claim_floor_lower();

CREATE CONSTRAINT TRIGGER jobs_claim_floor_early AFTER INSERT OR UPDATE OF state, queue, priority, scheduled_at ON bosun.jobs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.state = ANY (ARRAY['available'::bosun.job_state, 'scheduled'::bosun.job_state, 'retryable'::bosun.job_state])) AND (new.scheduled_at < now()))) EXECUTE FUNCTION bosun.claim_floor_lower();

CREATE TRIGGER jobs_mark_scheduled BEFORE INSERT ON bosun.jobs FOR EACH ROW WHEN (((new.state = 'available'::bosun.job_state) AND (new.scheduled_at > now()))) EXECUTE FUNCTION bosun.jobs_mark_scheduled();

CREATE TRIGGER jobs_target_attach BEFORE INSERT ON bosun.jobs FOR EACH ROW WHEN ((new.target IS NOT NULL)) EXECUTE FUNCTION bosun.job_target_attach();

CREATE TRIGGER jobs_target_change BEFORE UPDATE OF target ON bosun.jobs FOR EACH ROW WHEN (((new.target IS NOT NULL) AND (new.target IS DISTINCT FROM old.target))) EXECUTE FUNCTION bosun.job_target_attach();

CREATE CONSTRAINT TRIGGER jobs_wake_waiting AFTER INSERT ON bosun.jobs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.scheduled_at <= now()) AND (strpos(COALESCE(current_setting('bosun.wake_queues'::text, true), ''::text), ((','::text || new.queue) || ','::text)) = 0) AND (set_config('bosun.wake_queues'::text, ((COALESCE(NULLIF(current_setting('bosun.wake_queues'::text, true), ''::text), ','::text) || new.queue) || ','::text), true) IS NOT NULL))) EXECUTE FUNCTION bosun.jobs_wake_waiting();

CREATE TRIGGER sagas_count_outcome AFTER UPDATE OF state ON bosun.sagas FOR EACH ROW WHEN (((new.state = ANY (ARRAY['succeeded'::bosun.saga_state, 'compensated'::bosun.saga_state, 'stuck'::bosun.saga_state])) AND (old.state IS DISTINCT FROM new.state))) EXECUTE FUNCTION bosun.saga_count_outcome();

CREATE TRIGGER sagas_keep_error BEFORE UPDATE OF error ON bosun.sagas FOR EACH ROW WHEN (((new.error IS NOT NULL) AND (new.error IS DISTINCT FROM old.error))) EXECUTE FUNCTION bosun.saga_keep_error();

CREATE TRIGGER workers_record_changed_kinds AFTER UPDATE OF kinds ON bosun.workers FOR EACH ROW WHEN ((new.kinds IS DISTINCT FROM old.kinds)) EXECUTE FUNCTION bosun.workers_record_kinds();

CREATE TRIGGER workers_record_kinds AFTER INSERT ON bosun.workers FOR EACH ROW EXECUTE FUNCTION bosun.workers_record_kinds();

-- ========================================================================================
-- Who may do what (the roles are made by migration 0003)
-- ========================================================================================

GRANT USAGE ON SCHEMA bosun TO bosun_enqueuer;
GRANT USAGE ON SCHEMA bosun TO bosun_worker;
GRANT USAGE ON SCHEMA bosun TO bosun_operator;
GRANT USAGE ON SCHEMA bosun TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.advance_claim_floor(queue_name text, lane_priority integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.advance_claim_floor(queue_name text, lane_priority integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.advance_claim_floor(queue_name text, lane_priority integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.bad_tags(tags text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.bad_tags(tags text[]) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.bad_tags(tags text[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.bad_tags(tags text[]) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.bad_tags(tags text[]) TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.jobs TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.jobs TO bosun_operator;

GRANT SELECT(id) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(kind) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(queue) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(args) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(priority) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(max_attempts) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(scheduled_at) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(unique_key) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(target) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(tags) ON TABLE bosun.jobs TO bosun_enqueuer;

GRANT INSERT(meta) ON TABLE bosun.jobs TO bosun_enqueuer;

REVOKE ALL ON FUNCTION bosun.cancel_job(id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.cancel_job(id bigint) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.valid_queue(queue text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.valid_queue(queue text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.valid_queue(queue text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.valid_queue(queue text) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.valid_queue(queue text) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.valid_saga_kind(kind text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.valid_saga_kind(kind text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.valid_saga_kind(kind text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.valid_saga_kind(kind text) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.valid_saga_kind(kind text) TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.sagas TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.sagas TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.cancel_saga(id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.cancel_saga(id uuid) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.check_invariants(grace interval) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.check_invariants(grace interval) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.check_invariants(grace interval) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.claim(worker text, queues text[], max_jobs integer, kinds text[], wait boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.claim(worker text, queues text[], max_jobs integer, kinds text[], wait boolean) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.claim(worker text, queues text[], max_jobs integer, kinds text[], wait boolean) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.claim_floor_lower() FROM PUBLIC;

REVOKE ALL ON FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.claim_jobs(queue_name text, max_jobs bigint, kinds text[], worker text, wait boolean) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.complete_job(job_id bigint, job_attempt integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.complete_job(job_id bigint, job_attempt integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.complete_job(job_id bigint, job_attempt integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.delete_saga(id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.delete_saga(id uuid) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.enqueue(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.enqueue(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.enqueue(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.enqueue(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[], queues text[], priorities integer[], scheduled_ats timestamp with time zone[], max_attempts_list integer[], unique_keys text[], targets text[], tag_lists jsonb[], metas jsonb[], caller text, labelled boolean, on_conflict text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[], queues text[], priorities integer[], scheduled_ats timestamp with time zone[], max_attempts_list integer[], unique_keys text[], targets text[], tag_lists jsonb[], metas jsonb[], caller text, labelled boolean, on_conflict text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[], queues text[], priorities integer[], scheduled_ats timestamp with time zone[], max_attempts_list integer[], unique_keys text[], targets text[], tag_lists jsonb[], metas jsonb[], caller text, labelled boolean, on_conflict text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.enqueue_arrays(kinds text[], arg_objects jsonb[], queues text[], priorities integer[], scheduled_ats timestamp with time zone[], max_attempts_list integer[], unique_keys text[], targets text[], tag_lists jsonb[], metas jsonb[], caller text, labelled boolean, on_conflict text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.enqueue_many(jobs jsonb, on_conflict text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.enqueue_many(jobs jsonb, on_conflict text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.enqueue_many(jobs jsonb, on_conflict text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.enqueue_many(jobs jsonb, on_conflict text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.enqueue_unique(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.enqueue_unique(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.enqueue_unique(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.enqueue_unique(kind text, args jsonb, queue text, priority integer, scheduled_at timestamp with time zone, max_attempts integer, unique_key text, target text, tags text[], meta jsonb, on_conflict text) TO bosun_operator;

GRANT SELECT ON TABLE bosun.targets TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.targets TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.expunge_target(name text, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.expunge_target(name text, reason text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.fail_job(job_id bigint, job_attempt integer, error text, permanent boolean, retry_in interval, error_kind text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.fail_job(job_id bigint, job_attempt integer, error text, permanent boolean, retry_in interval, error_kind text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.fail_job(job_id bigint, job_attempt integer, error text, permanent boolean, retry_in interval, error_kind text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.give_back_jobs(ids bigint[], attempts integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.give_back_jobs(ids bigint[], attempts integer[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.give_back_jobs(ids bigint[], attempts integer[]) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.is_timestamptz(value text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.is_timestamptz(value text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.is_timestamptz(value text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.is_timestamptz(value text) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.is_timestamptz(value text) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.job_input_error(label text, kind text, args jsonb, queue text, priority integer, max_attempts integer, unique_key text, target text, tags jsonb, meta jsonb, scheduled_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_input_error(label text, kind text, args jsonb, queue text, priority integer, max_attempts integer, unique_key text, target text, tags jsonb, meta jsonb, scheduled_at timestamp with time zone) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_input_error(label text, kind text, args jsonb, queue text, priority integer, max_attempts integer, unique_key text, target text, tags jsonb, meta jsonb, scheduled_at timestamp with time zone) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_lock_for(caller text, job_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_lock_for(caller text, job_id bigint) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_lock_for(caller text, job_id bigint) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_progress(job_id bigint, job_attempt integer, progress jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_progress(job_id bigint, job_attempt integer, progress jsonb) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_progress(job_id bigint, job_attempt integer, progress jsonb) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_refuse_expunged(caller text, j bosun.jobs) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_refuse_expunged(caller text, j bosun.jobs) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_refuse_expunged(caller text, j bosun.jobs) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_refuse_saga_step(caller text, j bosun.jobs, instead text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_refuse_saga_step(caller text, j bosun.jobs, instead text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_refuse_saga_step(caller text, j bosun.jobs, instead text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_revive(job_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_revive(job_id bigint) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_revive(job_id bigint) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.job_row_problem(kind text, queue text, args jsonb, meta jsonb, errors jsonb, tags text[]) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.job_saga(j bosun.jobs) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_saga(j bosun.jobs) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_saga(j bosun.jobs) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_status(id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_status(id bigint) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.job_status(id bigint) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.job_status(id bigint) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.job_target_attach() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.job_target_attach() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.jobs_mark_scheduled() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.jobs_mark_scheduled() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.jobs_reject_bad_row() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.jobs_reject_bad_row() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.jobs_reject_bad_update() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.jobs_reject_bad_update() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.jobs_wake_waiting() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.jobs_wake_waiting() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.kind_served(kind text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.kind_served(kind text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.kind_served(kind text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.lost_jobs(ids bigint[], attempts integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.lost_jobs(ids bigint[], attempts integer[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.lost_jobs(ids bigint[], attempts integer[]) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.notify_queues(queues text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.notify_queues(queues text[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.notify_queues(queues text[]) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.valid_kind(kind text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.valid_kind(kind text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.valid_kind(kind text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.valid_kind(kind text) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.valid_kind(kind text) TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.periodic_jobs TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.periodic_jobs TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.pause_periodic(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.pause_periodic(name text) TO bosun_operator;

GRANT SELECT ON TABLE bosun.queues TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.queues TO bosun_operator;
GRANT SELECT ON TABLE bosun.queues TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.pause_queue(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.pause_queue(name text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.periodic_fire(name text, slot timestamp with time zone, next_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.periodic_fire(name text, slot timestamp with time zone, next_at timestamp with time zone) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.periodic_fire(name text, slot timestamp with time zone, next_at timestamp with time zone) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.periodic_lock_for(caller text, name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.periodic_lock_for(caller text, name text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.periodic_lock_for(caller text, name text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.periodic_note(name text, next_at timestamp with time zone, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.periodic_note(name text, next_at timestamp with time zone, error text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.periodic_note(name text, next_at timestamp with time zone, error text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.periodic_set_enabled(caller text, name text, enabled boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.periodic_set_enabled(caller text, name text, enabled boolean) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.periodic_skip(name text, first timestamp with time zone, last timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.periodic_skip(name text, first timestamp with time zone, last timestamp with time zone) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.periodic_skip(name text, first timestamp with time zone, last timestamp with time zone) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.protocol_version() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.protocol_version() TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.protocol_version() TO bosun_worker;
GRANT ALL ON FUNCTION bosun.protocol_version() TO bosun_operator;
GRANT ALL ON FUNCTION bosun.protocol_version() TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.queue_set_paused(caller text, queue_name text, pause boolean) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.quote_short(value text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.quote_short(value text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.quote_short(value text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.quote_short(value text) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.quote_short(value text) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.reap_expunged(batch integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.reap_expunged(batch integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.reap_expunged(batch integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.register_target(name text, kind text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.register_target(name text, kind text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.register_target(name text, kind text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.register_target(name text, kind text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.require_arguments(caller text, names text[], missing boolean[]) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.reschedule_job(id bigint, at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.reschedule_job(id bigint, at timestamp with time zone) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.resume_periodic(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.resume_periodic(name text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.resume_queue(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.resume_queue(name text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.retry_job(id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.retry_job(id bigint) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.retry_jobs(queue text, kind text, state bosun.job_state) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.retry_jobs(queue text, kind text, state bosun.job_state) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.retry_saga(id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.retry_saga(id uuid) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_compensate_below(s bosun.sagas, below integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_count_outcome() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_count_outcome() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_enqueue_step(saga_id uuid, saga_kind text, queue text, step integer, direction text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_enqueue_step(saga_id uuid, saga_kind text, queue text, step integer, direction text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_enqueue_step(saga_id uuid, saga_kind text, queue text, step integer, direction text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_job_finish(job_id bigint, job_attempt integer, state bosun.job_state, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_job_finish(job_id bigint, job_attempt integer, state bosun.job_state, error text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_job_finish(job_id bigint, job_attempt integer, state bosun.job_state, error text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_job_held(job_id bigint, job_attempt integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_job_hold_taking_limit(job_id bigint, job_attempt integer, step_max_attempts integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_job_hold_taking_limit(job_id bigint, job_attempt integer, step_max_attempts integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_job_hold_taking_limit(job_id bigint, job_attempt integer, step_max_attempts integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_job_keys(s bosun.sagas) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_job_keys(s bosun.sagas) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_job_keys(s bosun.sagas) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_keep_error() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_keep_error() TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_lock_for(caller text, saga_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_lock_for(caller text, saga_id uuid) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_lock_for(caller text, saga_id uuid) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_reap_step(j bosun.jobs, reason text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[], step_max_attempts integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[], step_max_attempts integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_names text[], step_has_undo boolean[], step_max_attempts integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_done(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer, output jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_done(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer, output jsonb) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_done(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_count integer, output jsonb) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_note_error(saga_id uuid, step integer, error text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_progress(saga_id uuid, step integer, pct real, message text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_step_skip(job_id bigint, job_attempt integer, saga_id uuid, step integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_step_skip(job_id bigint, job_attempt integer, saga_id uuid, step integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_step_skip(job_id bigint, job_attempt integer, saga_id uuid, step integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_target_gone(s bosun.sagas, step integer, direction text, reason text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_max_attempts integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_max_attempts integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_undo_begin(job_id bigint, job_attempt integer, saga_id uuid, step integer, step_max_attempts integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_undo_done(job_id bigint, job_attempt integer, saga_id uuid, step integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_undo_done(job_id bigint, job_attempt integer, saga_id uuid, step integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_undo_done(job_id bigint, job_attempt integer, saga_id uuid, step integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_undo_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_undo_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_undo_fail(job_id bigint, job_attempt integer, saga_id uuid, step integer, error text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.saga_undo_gone(job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.saga_undo_gone(job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.saga_undo_gone(job_id bigint, job_attempt integer, saga_id uuid, step integer, reason text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.sample_oldest_available() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.sample_oldest_available() TO bosun_worker;
GRANT ALL ON FUNCTION bosun.sample_oldest_available() TO bosun_operator;
GRANT ALL ON FUNCTION bosun.sample_oldest_available() TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.sample_queues(exact_below bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.sample_queues(exact_below bigint) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.sample_queues(exact_below bigint) TO bosun_operator;
GRANT ALL ON FUNCTION bosun.sample_queues(exact_below bigint) TO bosun_reader;

REVOKE ALL ON FUNCTION bosun.schedule_periodic(name text, cron text, kind text, args jsonb, queue text, priority integer, max_attempts integer, target text, catch_up text, catch_up_max integer, timezone text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.schedule_periodic(name text, cron text, kind text, args jsonb, queue text, priority integer, max_attempts integer, target text, catch_up text, catch_up_max integer, timezone text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.schedule_periodic(name text, cron text, kind text, args jsonb, queue text, priority integer, max_attempts integer, target text, catch_up text, catch_up_max integer, timezone text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.snooze_job(job_id bigint, job_attempt integer, delay interval) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.snooze_job(job_id bigint, job_attempt integer, delay interval) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.snooze_job(job_id bigint, job_attempt integer, delay interval) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.start_saga(kind text, key text, inputs jsonb, target text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.start_saga(kind text, key text, inputs jsonb, target text) TO bosun_enqueuer;
GRANT ALL ON FUNCTION bosun.start_saga(kind text, key text, inputs jsonb, target text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.start_saga(kind text, key text, inputs jsonb, target text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.target_attach(caller text, target text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.target_attach(caller text, target text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.target_attach(caller text, target text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.target_gone_reason(target text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.target_gone_reason(target text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.target_gone_reason(target text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.unschedule_periodic(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.unschedule_periodic(name text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.worker_deregister(worker text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.worker_deregister(worker text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.worker_deregister(worker text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.worker_heartbeat(worker text, queues text[], kinds text[], lease_seconds double precision, host text, pid integer) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.worker_heartbeat(worker text, queues text[], kinds text[], lease_seconds double precision, host text, pid integer) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.worker_heartbeat(worker text, queues text[], kinds text[], lease_seconds double precision, host text, pid integer) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.worker_waits(queue_name text, worker text) FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.worker_waits(queue_name text, worker text) TO bosun_worker;
GRANT ALL ON FUNCTION bosun.worker_waits(queue_name text, worker text) TO bosun_operator;

REVOKE ALL ON FUNCTION bosun.workers_record_kinds() FROM PUBLIC;
GRANT ALL ON FUNCTION bosun.workers_record_kinds() TO bosun_operator;

GRANT SELECT ON TABLE bosun.claim_floors TO bosun_worker;
GRANT SELECT ON TABLE bosun.claim_floors TO bosun_operator;
GRANT SELECT ON TABLE bosun.claim_floors TO bosun_reader;

GRANT USAGE ON SEQUENCE bosun.jobs_id_seq TO bosun_enqueuer;
GRANT USAGE ON SEQUENCE bosun.jobs_id_seq TO bosun_worker;
GRANT USAGE ON SEQUENCE bosun.jobs_id_seq TO bosun_operator;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.leaders TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.leaders TO bosun_operator;
GRANT SELECT ON TABLE bosun.leaders TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.queue_stats TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.queue_stats TO bosun_operator;
GRANT SELECT ON TABLE bosun.queue_stats TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.saga_outcomes TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.saga_outcomes TO bosun_operator;
GRANT SELECT ON TABLE bosun.saga_outcomes TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.saga_steps TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.saga_steps TO bosun_operator;

GRANT SELECT ON TABLE bosun.served_kinds TO bosun_enqueuer;
GRANT SELECT ON TABLE bosun.served_kinds TO bosun_reader;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.served_kinds TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.served_kinds TO bosun_operator;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.target_stats TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.target_stats TO bosun_operator;
GRANT SELECT ON TABLE bosun.target_stats TO bosun_reader;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.waiting_workers TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.waiting_workers TO bosun_operator;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.workers TO bosun_worker;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE bosun.workers TO bosun_operator;
GRANT SELECT ON TABLE bosun.workers TO bosun_reader;

--
--

SET LOCAL check_function_bodies = on;
