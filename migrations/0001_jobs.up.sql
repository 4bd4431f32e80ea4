-- Bosun 0001: the jobs table, its states, queue pause flags, and the insert wake-up.
--
-- Everything lives in schema `bosun`. The migrator (queue/src/migrate.rs) creates the schema
-- and its own bookkeeping table before this file runs, inside one transaction that holds an
-- advisory lock, so replicas that migrate at once apply this exactly once.

CREATE TYPE bosun.job_state AS ENUM (
    'scheduled',  -- waits for scheduled_at
    'available',  -- ready to run
    'running',    -- claimed by one worker; attempt is the fencing token
    'retryable',  -- an attempt failed; runs again at scheduled_at (backoff)
    'completed',  -- done
    'failed',     -- will not run again unless retried by hand
    'cancelled'   -- stopped on request
);

-- Validation shared by the table's CHECK constraints and the SQL functions, so that a plain
-- INSERT and bosun.enqueue agree on what a good name is.
CREATE FUNCTION bosun.valid_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT kind ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$' $$;

CREATE FUNCTION bosun.valid_queue(queue text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$' $$;

CREATE SEQUENCE bosun.jobs_id_seq AS bigint;

CREATE TABLE bosun.jobs (
    id            bigint          NOT NULL DEFAULT nextval('bosun.jobs_id_seq') PRIMARY KEY,
    kind          text            NOT NULL,
    queue         text            NOT NULL DEFAULT 'default',
    args          jsonb           NOT NULL DEFAULT '{}',
    state         bosun.job_state NOT NULL DEFAULT 'available',
    priority      smallint        NOT NULL DEFAULT 0,
    attempt       integer         NOT NULL DEFAULT 0,
    max_attempts  integer         NOT NULL DEFAULT 20,
    scheduled_at  timestamptz     NOT NULL DEFAULT now(),
    created_at    timestamptz     NOT NULL DEFAULT now(),
    attempted_at  timestamptz,
    finalized_at  timestamptz,
    attempted_by  text,
    errors        jsonb           NOT NULL DEFAULT '[]',
    unique_key    text,
    target        text,
    tags          text[]          NOT NULL DEFAULT '{}',
    meta          jsonb           NOT NULL DEFAULT '{}',

    -- Constraint names are the message a client sees for a bad plain INSERT.
    CONSTRAINT kind_has_bad_format_see_bosun_valid_kind
        CHECK (bosun.valid_kind(kind)),
    CONSTRAINT queue_has_bad_format_see_bosun_valid_queue
        CHECK (bosun.valid_queue(queue)),
    CONSTRAINT args_must_be_a_json_object CHECK (jsonb_typeof(args) = 'object'),
    CONSTRAINT meta_must_be_a_json_object CHECK (jsonb_typeof(meta) = 'object'),
    CONSTRAINT errors_must_be_a_json_array CHECK (jsonb_typeof(errors) = 'array'),
    CONSTRAINT max_attempts_must_be_at_least_1 CHECK (max_attempts >= 1),
    CONSTRAINT attempt_must_not_be_negative CHECK (attempt >= 0),
    CONSTRAINT unique_key_must_be_1_to_255_characters
        CHECK (unique_key IS NULL OR length(unique_key) BETWEEN 1 AND 255),
    CONSTRAINT target_must_be_1_to_255_characters
        CHECK (target IS NULL OR length(target) BETWEEN 1 AND 255),
    CONSTRAINT running_job_has_an_attempt CHECK (state <> 'running' OR attempt >= 1),
    CONSTRAINT finished_job_has_finalized_at
        CHECK (state NOT IN ('completed', 'failed', 'cancelled') OR finalized_at IS NOT NULL)
);

-- Every UPDATE of a claim or completion rewrites the row; leave room on the page so that
-- updates which touch no indexed column can stay HOT.
ALTER TABLE bosun.jobs SET (fillfactor = 90);
ALTER SEQUENCE bosun.jobs_id_seq OWNED BY bosun.jobs.id;

-- The claim index: only claimable rows are in it, so it stays small however many finished
-- rows are retained. Claim order is priority (lower first), then scheduled_at, then id.
CREATE INDEX jobs_claimable_idx ON bosun.jobs (queue, priority, scheduled_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');

-- Running jobs, for lease checks and shutdown hand-back.
CREATE INDEX jobs_running_idx ON bosun.jobs (attempted_by, id) WHERE state = 'running';

-- Operators list and prune by state and age.
CREATE INDEX jobs_state_queue_idx ON bosun.jobs (state, queue, kind);

-- A deterministic name makes enqueue idempotent: the key is unique while the row exists.
CREATE UNIQUE INDEX jobs_unique_key_idx ON bosun.jobs (unique_key) WHERE unique_key IS NOT NULL;

-- A plain INSERT with a future scheduled_at is shown as `scheduled`, as bosun.enqueue does.
-- The WHEN clause keeps the function call off the common path.
CREATE FUNCTION bosun.jobs_mark_scheduled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.state := 'scheduled';
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_mark_scheduled
    BEFORE INSERT ON bosun.jobs
    FOR EACH ROW
    WHEN (NEW.state = 'available' AND NEW.scheduled_at > now())
    EXECUTE FUNCTION bosun.jobs_mark_scheduled();

-- Wake-up: one NOTIFY per statement on channel `bosun_jobs`, whatever inserted the rows
-- (bosun.enqueue, enqueue_many, or a plain INSERT from any client). The payload is the
-- comma-separated list of queues that received a job claimable now, or '*' when the list
-- would not fit a notification. Workers treat a notification as a hint and poll as well.
CREATE FUNCTION bosun.notify_queues(queues text[]) RETURNS void LANGUAGE plpgsql AS $$
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
$$;

CREATE FUNCTION bosun.jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bosun.notify_queues(ARRAY(
        SELECT DISTINCT queue FROM inserted WHERE scheduled_at <= now()
    ));
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert
    AFTER INSERT ON bosun.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION bosun.jobs_notify_insert();

-- Queue settings that every replica must see: today the pause flag.
CREATE TABLE bosun.queues (
    name        text        NOT NULL PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    paused_at   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queue_has_bad_format_see_bosun_valid_queue
        CHECK (bosun.valid_queue(name))
);
